"""Try the module without a robot: a local stand-in for viam-server (``./run.sh local``) and ``./run.sh demo``."""
