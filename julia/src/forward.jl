# Forward pass: one GRU-ODE solve over a token interval [0, dt].

"""The dense forward solution, kept between the torch forward and backward calls."""
struct ForwardSolve{S}
    sol::S
    H::Int
    B::Int
end

"""Nothing to wait for on the CPU; the CUDA extension synchronizes the device."""
device_sync(::AbstractArray) = nothing
device_sync(::Nothing) = nothing

"""
    gruode_problem(h0, Ut, C, bhn, dt, tau, reset_after)

`ODEProblem` on [0, dt] whose state is a copy of `h0` (H, B) and whose parameters are
packed from `Ut` (H, 3H), `C` (3H, B) and `bhn` (H or `nothing`).
"""
function gruode_problem(h0, Ut, C, bhn, dt::T, tau::T, reset_after::Bool) where {T}
    H, B = size(h0)
    u0 = similar(h0, T, H, B)
    copyto!(u0, h0)
    p = pack_parameters(u0, Ut, C, bhn)
    field = GRUODEField(reset_variant(reset_after), H, B, inv(tau), u0)
    return ODEProblem(gruode_function(field, u0), u0, (zero(T), dt), p)
end

"""
    forward!(h1, h0, Ut, C, bhn; dt, tau, reset_after, solver, rtol, atol, dense = true)

Solve the GRU-ODE from `h0` over [0, dt] and write the end state into `h1` (both
(H, B), typically zero-copy views of torch memory). `dense = true` keeps the dense
solution for `backward!`. Returns a `ForwardSolve`; throws `SolveFailure` when the
solver stops early (the integrator is kept to report where it stood).
"""
function forward!(
    h1,
    h0,
    Ut,
    C,
    bhn;
    dt,
    tau,
    reset_after::Bool,
    solver::AbstractString,
    rtol,
    atol,
    dense::Bool = true,
)
    T = eltype(h1)
    spec = solver_spec(solver)
    prob = gruode_problem(h0, Ut, C, bhn, T(dt), T(tau), reset_after)
    options = step_options(spec, T(dt), T(rtol), T(atol))
    integrator = init(prob, spec.make(); dense, save_everystep = dense, options...)
    sol = solve!(integrator)
    successful_retcode(sol) || throw(SolveFailure(
        "forward",
        spec.name,
        String(Symbol(sol.retcode)),
        integrator.t,
        integrator.dt,
        !all(isfinite, integrator.u),
    ))
    copyto!(h1, last(sol.u))
    device_sync(h1)
    return ForwardSolve(sol, size(h0)...)
end

"""`(nf, naccept, nreject, njacs)` of the forward solve, for per-token statistics."""
function forward_stats(fwd::ForwardSolve)
    stats = fwd.sol.stats
    return (stats.nf, stats.naccept, stats.nreject, stats.njacs)
end
