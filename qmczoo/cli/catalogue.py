"""``qmczoo list`` and ``qmczoo info``: what the registry and the molecule data hold."""

from __future__ import annotations

import typer

from qmczoo.cli.app import _claims_text, _friendly, _one_line, _options_text, app


def _system_info(s) -> None:
    """What ``qmczoo info MOLECULE`` prints: electrons, geometry, ECP and reference energy."""
    typer.echo(s.describe())
    for sym, xyz in zip(s.symbols, s.coords):
        typer.echo(f"  {sym:<2} {xyz[0]:>12.6f} {xyz[1]:>12.6f} {xyz[2]:>12.6f}  (bohr)")
    if s.ecp is not None:
        from qmczoo.chemistry.ecp import basis_for

        for symbol in s.ecp.symbols:
            atom = s.ecp.for_symbol(symbol)
            channels = "spdfghi"[: len(atom.nonlocal_)] or "none"
            typer.echo(f"ECP {s.ecp.name} on {symbol}: {atom.n_core} core electrons, effective charge "
                       f"{atom.effective_charge}, nonlocal channels {channels}")
        typer.echo(f"valence electrons: {s.n_electrons} ({s.n_up} up, {s.n_down} down); Hartree-Fock basis for "
                   f"ccpvdz: {basis_for(s, 'ccpvdz')}")
    if s.reference_energy is not None:
        what = "valence-only reference energy" if s.ecp is not None else "reference energy"
        typer.echo(f"{what}: {s.reference_energy} Ha ({s.reference_source})")


@app.command("list")
@_friendly
def list_cmd(systems: bool = typer.Option(False, "--systems", help="Also list the named molecules."),
             layers_only: bool = typer.Option(False, "--layers", help="Only the layers, with slots, claims and options.")):
    """List the registered ansätze and layers (and, with --systems, named molecules)."""
    from rich.console import Console
    from rich.table import Table

    from qmczoo.registry import list_ansatze, list_layers

    console = Console()
    if not layers_only:
        t = Table(title="ansätze (qmczoo info NAME shows slots, options and presets)", title_justify="left")
        for col in ("name", "presets", "description", "paper"):
            t.add_column(col, no_wrap=col == "name")
        for name, e in sorted(list_ansatze().items()):
            t.add_row(name, ", ".join(e.get("presets") or {}), _one_line(e.get("description")),
                      _one_line(e.get("paper")))
        console.print(t)
    t = Table(title="layers (fill a slot with --set SLOT=NAME)", title_justify="left")
    columns = ("name", "slot", "description") + (("claims", "options", "paper") if layers_only else ())
    for col in columns:
        t.add_column(col, no_wrap=col in ("name", "slot"))
    for name, e in sorted(list_layers().items(), key=lambda kv: (kv[1].get("slot", ""), kv[0])):
        row = [name, e.get("slot", ""), _one_line(e.get("description"))]
        if layers_only:
            row += [_claims_text(e.get("claims")), _options_text(e.get("options")), _one_line(e.get("paper")) or "-"]
        t.add_row(*row)
    console.print(t)
    if systems:
        from qmczoo.chemistry.systems import get_system, molecule_names

        t = Table(title="named molecules (--system NAME)", title_justify="left")
        for col in ("name", "electrons", "reference energy (Ha)"):
            t.add_column(col)
        for name in molecule_names():
            s = get_system(name)
            ref = f"{s.reference_energy:.6f}" if s.reference_energy is not None else "-"
            valence = f", valence ({s.ecp.name})" if s.ecp is not None else ""
            t.add_row(name, f"{s.n_electrons} ({s.n_up}↑ {s.n_down}↓){valence}", ref)
        console.print(t)


@app.command()
@_friendly
def info(name: str = typer.Argument(..., help="An ansatz, a layer or a named molecule."),
         ecp: str = typer.Option(None, "--ecp", help="With a molecule: the valence-only system under this "
                                                     "effective core potential (e.g. ccecp)."),
         ecp_atoms: str = typer.Option(None, "--ecp-atoms", help="Elements that get the ECP, e.g. Si,C.")):
    """Show what the registry knows about NAME: an ansatz's slots and fillers, options, presets
    and paper; a layer's slot, claims and options; a molecule's geometry and reference energy
    (with --ecp: its valence electrons, the ECP and the matching basis)."""
    from qmczoo.errors import ConfigError
    from qmczoo.registry import entry, get_ansatz, list_ansatze

    try:
        kind, e = entry(name)
    except ConfigError:
        from qmczoo.registry import _BROKEN

        if name in _BROKEN:  # a plug-in's malformed entry: say so, not "unknown molecule"
            raise
        from qmczoo.chemistry.systems import get_system

        _system_info(get_system(name, ecp=ecp, ecp_atoms=ecp_atoms))
        return
    if ecp is not None or ecp_atoms is not None:
        raise ConfigError(f"--ecp and --ecp-atoms describe a molecule; {name!r} is an "
                          f"{'ansatz' if kind == 'ansatze' else 'layer'}")
    factory = e.get("factory")
    factory = factory if isinstance(factory, str) else f"{factory.__module__}:{factory.__qualname__}"
    typer.echo(f"{name} ({'ansatz' if kind == 'ansatze' else 'layer'}): {_one_line(e.get('description'))}")
    if e.get("paper"):
        typer.echo(f"paper: {_one_line(e.get('paper'))}")
    typer.echo(f"factory: {factory}" + (" (a Haiku transform)" if e.get("framework") == "haiku" else ""))
    if e.get("plugin"):
        over = f"; overrides {e['overrides']}" if e.get("overrides") else ""
        typer.echo(f"from plug-in: {e['plugin']}{over}")
    if kind == "layers":
        users = [a for a, ae in sorted(list_ansatze().items()) if name in (ae.get("defaults") or {}).values()]
        typer.echo(f"slot: {e.get('slot')}")
        typer.echo(f"claims: {_claims_text(e.get('claims'))}")
        _echo_claims_when(e)
        typer.echo(f"options: {_options_text(e.get('options'))}")
        typer.echo(f"default filler in: {', '.join(users) or '-'}")
        return
    spec = get_ansatz(name)
    slots = e.get("slots") or {}
    if slots:
        typer.echo("slots (--set SLOT=LAYER; the filler's options as --set SLOT.KEY=VALUE):")
        for opt, slot_kind in slots.items():
            filler = spec.options[opt]
            own = {k.partition(".")[2]: v for k, v in spec.options.items() if k.startswith(opt + ".")}
            kind_text = "" if slot_kind == opt else f" ({slot_kind})"
            typer.echo(f"  {opt + kind_text:<26} {filler:<24} {_options_text(own) if own else ''}".rstrip())
    model = {k: v for k, v in spec.options.items() if "." not in k and k not in slots}
    typer.echo(f"options: {_options_text(model)}")
    typer.echo(f"claims: {_claims_text(e.get('claims'))}")
    _echo_claims_when(e)
    _echo_imposes(spec)
    if e.get("presets"):
        typer.echo("presets (--preset NAME):")
        for preset, values in e["presets"].items():
            typer.echo(f"  {preset}: {_options_text(values)}")


def _echo_claims_when(e: dict) -> None:
    for condition, extra in (e.get("claims_when") or {}).items():
        typer.echo(f"claims when {condition}: {_claims_text(extra)}")


def _echo_imposes(spec) -> None:
    """``imposes: ...`` (what psi is invariant under, derived from the fillers and claims) and a
    line for each kind of system on which it imposes more."""
    general = spec.imposes()
    typer.echo(f"imposes: {general.describe()}")
    labels = {"atom": "an atom", "linear": "a linear molecule", "planar": "a planar molecule"}
    for kind, label in labels.items():
        on_kind = spec.imposes(kind)
        if on_kind.consequences(kind) != general.consequences(kind):
            typer.echo(f"imposes on {label}: only {', '.join(on_kind.consequences(kind))} states")
