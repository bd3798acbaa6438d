"""stpn: spatio-temporal prompting (STPN, ICCV 2023) for robust video features."""
from .core import *  # noqa: F401,F403
from .core import __all__

__version__ = "0.1.0"
