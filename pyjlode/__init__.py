"""pyjlode: continuous-time recurrent text models (GRU-ODE) with adaptive explicit and stiff ODE solvers
and adjoint gradients in PyTorch, plus an optional Julia (SciML) engine."""
__version__ = "0.1.0"
