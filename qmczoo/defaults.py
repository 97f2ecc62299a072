"""Defaults of a user-facing run (`qmczoo train`, `qmczoo bench`, :func:`qmczoo.run_bench`).

One place for the settings that the command line and the bench share, kept free of heavy
imports so that the CLI can read it at start-up. They differ from
:class:`qmczoo.engine.vmc.TrainConfig`'s library defaults only in the run length and the
checkpoint interval.
"""

RUN_DEFAULTS = dict(steps=1200, batch_size=256, optimizer="kfac", pretrain_steps=500, mcmc_steps=10, burn_in=100,
                    laplacian="folx", dtype="float32", eval_steps=200, checkpoint_every=100)
