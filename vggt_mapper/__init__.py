"""
Dense 3D mapping from a single moving camera with VGGT.

The data path reads from the layout: frames → keyframes → windows → predictions → alignment →
map → outputs. ``model`` and ``predictor`` turn frames into typed window predictions, ``engine``
aligns them into one map, ``io`` reads inputs and writes exports, and ``ros``, ``cli`` and ``web``
are the doors. Importing this package imports neither torch nor any door.
"""

__version__ = '0.1.0'

__all__ = ['__version__']
