"""ccx-tray engine: the proxy core. No GUI import anywhere under this package."""

__version__ = "0.1.0"
