# Backward pass: SciMLSensitivity's continuous adjoint of one forward solve.
#
# The field's ODEFunction carries analytic `vjp` and `vjp_p`, which SciMLSensitivity
# prefers over any AD system, so no AD runs in the adjoint. `autojacvec` must still
# be set: `ZygoteVJP()` is the choice that builds no AD caches or tapes when both
# user VJPs are present (SciMLSensitivity `adjointdiffcache`, `GaussIntegrand`).

const SENSEALGS = (
    interpolating = (rtol, atol) -> InterpolatingAdjoint(; autojacvec = ZygoteVJP()),
    backsolve = (rtol, atol) -> BacksolveAdjoint(; autojacvec = ZygoteVJP()),
    # Quadrature uses its own tolerances for the reverse ODE and for quadgk alike.
    quadrature = (rtol, atol) -> QuadratureAdjoint(;
        autojacvec = ZygoteVJP(),
        abstol = atol,
        reltol = rtol,
    ),
    gauss = (rtol, atol) -> GaussAdjoint(; autojacvec = ZygoteVJP()),
)

"""Names accepted as `sensealg` by `backward!`."""
sensealg_names() = [string(name) for name in keys(SENSEALGS)]

function make_sensealg(name::AbstractString, rtol, atol)
    key = Symbol(lowercase(name))
    haskey(SENSEALGS, key) && return SENSEALGS[key](rtol, atol)
    throw(ArgumentError(
        "unknown sensealg '$name'; choose one of: $(join(sensealg_names(), ", "))",
    ))
end

"""
    ReverseWatch(t1)

What the reverse solve reached. SciMLSensitivity returns λ wherever the reverse solve
stopped and no return code, so two documented hooks watch it: the discrete loss
callback at t0 (`reached`; it only fires once the solve gets there) and the solver's
`unstable_check(dt, u, p, t)`, called after every accepted step (`t`, `dt`, and a
non-finite state, which it also reports as unstable, as the default check does).
"""
mutable struct ReverseWatch
    reached::Bool
    t::Float64
    dt::Float64
    nonfinite::Bool
end

ReverseWatch(t1) = ReverseWatch(false, Float64(t1), NaN, false)

function (w::ReverseWatch)(dt, u, p, t)
    w.t, w.dt = t, dt
    w.nonfinite |= !all(isfinite, u)
    return w.nonfinite
end

"""
`dgdu_discrete` for a loss seen only at the end of the interval, with `t = [t0, t1]`:
+∂L/∂h(t1) at index 2; at index 1 (t0) it adds nothing and records that the reverse
solve arrived.
"""
struct TerminalCotangent{A}
    λ::A
    watch::ReverseWatch
end

function (c::TerminalCotangent)(out, u, p, t, i)
    if i == 1
        fill!(out, false)
        c.watch.reached = true
    else
        copyto!(out, c.λ)
    end
    return nothing
end

"""Copy the gradient of the flat parameter vector into (gUt, gC, gbhn)."""
function unpack_gradient!(gUt, gC, gbhn, dp::AbstractVector, H::Int, B::Int)
    Ut, C, bhn = parameter_views(dp, H, B)
    copyto!(gUt, Ut)
    copyto!(gC, C)
    copy_bias!(gbhn, bhn)
    return nothing
end

function check_adjoint(watch::ReverseWatch, spec::SolverSpec, du0, gp)
    finite = all(isfinite, du0) && all(isfinite, gp)
    watch.reached && finite && return nothing
    retcode = watch.reached ? "NonFiniteGradient" : "NotReached"
    throw(SolveFailure("adjoint", spec.name, retcode, watch.t, watch.dt, watch.nonfinite || !finite))
end

"""
    backward!(gh0, gUt, gC, gbhn, fwd, gh1; solver, sensealg, rtol, atol)

Given ∂L/∂h1 in `gh1` (H, B), write ∂L/∂h0, ∂L/∂Uᵀ (H, 3H), ∂L/∂C (3H, B) and
∂L/∂b_hn (H; skipped when `gbhn === nothing`). `solver` integrates the adjoint ODE
backwards; `sensealg` is one of `sensealg_names()`. Throws `SolveFailure` when the
reverse solve stops before t0 or the gradient is not finite.
"""
function backward!(
    gh0,
    gUt,
    gC,
    gbhn,
    fwd::ForwardSolve,
    gh1;
    solver::AbstractString,
    sensealg::AbstractString,
    rtol,
    atol,
)
    sol = fwd.sol
    T = eltype(sol.prob.u0)
    spec = solver_spec(solver)
    t0, t1 = first(sol.t), last(sol.t)
    watch = ReverseWatch(t1)
    cotangent = TerminalCotangent(copyto!(similar(sol.prob.u0), gh1), watch)
    du0, dp = adjoint_sensitivities(
        sol,
        spec.make();
        t = [t0, t1],
        dgdu_discrete = cotangent,
        sensealg = make_sensealg(sensealg, T(rtol), T(atol)),
        unstable_check = watch,
        step_options(spec, t1 - t0, T(rtol), T(atol))...,
    )
    # du0 comes back flat (length H·B) and dp as a 1×np row: reshape both.
    gp = vec(dp')
    check_adjoint(watch, spec, du0, gp)
    copyto!(gh0, reshape(du0, size(gh0)))
    unpack_gradient!(gUt, gC, gbhn, gp, fwd.H, fwd.B)
    device_sync(gh0)
    return nothing
end
