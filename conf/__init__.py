# Installed as the package `rnnexp.conf` (see pyproject.toml) so Hydra finds the configs from any directory.
