"""Look ansätze and layers up by name, with presets, option checking and claims.

``catalogue.py`` loads the entries (``registry.yaml``, entry-point plug-ins, :func:`register_ansatz`
/ :func:`register_layer`); ``spec.py`` resolves an ansatz with its options into an
:class:`AnsatzSpec`; ``claims.py`` resolves what a layer or an ansatz claims; ``symmetry.py``
derives what an ansatz imposes on psi from its fillers' claims, and ``state_check.py`` whether a
system's Hartree–Fock state has that symmetry.
"""

from qmczoo.layers.options import check_option
from qmczoo.registry.catalogue import (
    _BROKEN,
    ENTRY_POINT_GROUP,
    FRAMEWORKS,
    OPTIONAL_SLOTS,
    PluginWarning,
    _load,
    entry,
    get_layer,
    list_ansatze,
    list_layers,
    register_ansatz,
    register_layer,
    resolve,
)
from qmczoo.registry.claims import _layer_options, claim_variants, layer_claims, resolve_claims
from qmczoo.registry.spec import AnsatzSpec, get_ansatz, parse_overrides

__all__ = ["AnsatzSpec", "ENTRY_POINT_GROUP", "FRAMEWORKS", "OPTIONAL_SLOTS", "PluginWarning", "check_option",
           "claim_variants", "entry", "get_ansatz", "get_layer", "layer_claims", "list_ansatze", "list_layers",
           "parse_overrides", "register_ansatz", "register_layer", "resolve", "resolve_claims", "_BROKEN", "_load",
           "_layer_options"]
