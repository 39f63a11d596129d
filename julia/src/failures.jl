# Solve failures, as the Python bridge turns them into pyjlode's SolverError classes.

"""
    SolveFailure(stage, solver, retcode, t, dt, nonfinite)

A forward or adjoint solve that did not finish. `retcode` is the name of SciML's
`ReturnCode` (forward), "NotReached" (the adjoint stopped before t0; SciMLSensitivity
reports no return code for it) or "NonFiniteGradient". `t` and `dt` are where the
solver stood: the integrator's time and step for the forward solve, the last accepted
reverse step for the adjoint. `nonfinite` says whether the state had turned NaN or Inf.
"""
struct SolveFailure <: Exception
    stage::String
    solver::String
    retcode::String
    t::Float64
    dt::Float64
    nonfinite::Bool
end

function Base.showerror(io::IO, e::SolveFailure)
    return print(
        io,
        "PyJlODE $(e.stage) solve with $(e.solver) failed: $(e.retcode) at t=$(e.t) (dt=$(e.dt))",
    )
end

"""`(stage, solver, retcode, t, dt, nonfinite)` of a `SolveFailure`; `nothing` for any other error."""
failure_info(e::SolveFailure) = (e.stage, e.solver, e.retcode, e.t, e.dt, e.nonfinite)
failure_info(::Any) = nothing
