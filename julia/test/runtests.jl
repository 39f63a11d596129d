# Julia-side checks of PyJlODE (run with `julia --project=julia -e 'using Pkg; Pkg.test()'`).
# Claims: the analytic Jacobian, state VJP and parameter VJP equal central finite
# differences of the field; the block LU solves W exactly; solvers agree; adjoint
# gradients match finite differences for every sensealg, in Float64 and Float32;
# failed solves raise SolveFailure with their cause.

using PyJlODE
using Test
using LinearAlgebra: norm
using SparseArrays: rowvals, nnz, sparse

const P = PyJlODE

function random_problem(H, B; seed = 1, T = Float64)
    state = Float64(seed)
    next() = (state = mod(state * 16807.0, 2147483647.0); T(state / 2147483647.0 - 0.5))
    return (
        [next() for _ in 1:H, _ in 1:B],
        [next() for _ in 1:H, _ in 1:(3H)],
        [next() for _ in 1:(3H), _ in 1:B],
        [next() for _ in 1:H],
    )
end

"""Central-difference Jacobian of x -> f(x) (both flat), step 1e-6."""
function central_jacobian(f, x)
    J = zeros(length(f(x)), length(x))
    for k in eachindex(x)
        e = zero(x)
        e[k] = 1.0e-6
        J[:, k] = (vec(f(x + e)) - vec(f(x - e))) / 2.0e-6
    end
    return J
end

function field_value(prob)
    return (u, p) -> (du = similar(u); prob.f.f(du, u, p, 0.0); du)
end

@testset "block prototype is block diagonal" begin
    J = P.block_jacobian_prototype(Float64, 3, 2)
    @test size(J) == (6, 6) && nnz(J) == 18
    @test rowvals(J)[1:3] == 1:3 && rowvals(J)[10:12] == 4:6
    @test P.block_jacobian_prototype(Float64, 3, 2) === J
end

@testset "analytic derivatives vs finite differences, reset_after = $reset_after" for reset_after in (false, true)
    H, B = 4, 3
    h0, Ut, C, bhn = random_problem(H, B)
    prob = P.gruode_problem(h0, Ut, C, bhn, 1.0, 0.7, reset_after)
    f, u, p = field_value(prob), prob.u0, prob.p
    J = copy(prob.f.jac_prototype)
    prob.f.jac(J, u, p, 0.0)
    Ju = central_jacobian(x -> f(reshape(x, H, B), p), vec(u))
    @test norm(Matrix(J) - Ju) < 1.0e-7
    λ = vec(first(random_problem(H, B; seed = 5)))   # flat, as SciMLSensitivity passes it
    dλ = similar(λ)
    prob.f.vjp(dλ, λ, u, p, 0.0)
    @test norm(dλ - Ju' * λ) < 1.0e-7 * norm(Ju' * λ)
    dp = similar(p)
    prob.f.vjp_p(dp, λ, u, p, 0.0)
    Jp = central_jacobian(q -> f(u, q), p)
    @test norm(dp - Jp' * λ) < 1.0e-7 * norm(Jp' * λ)
    dT = similar(u)
    prob.f.tgrad(dT, u, p, 0.0)
    @test all(iszero, dT)
end

@testset "block LU solves W exactly ($T)" for T in (Float64, Float32)
    H, B = 3, 4
    W = copy(P.block_jacobian_prototype(T, H, B))
    W.nzval .= vec(first(random_problem(H * H * B, 1; seed = 3, T)))
    for i in 1:(H * B)
        W[i, i] += T(4)
    end
    rhs = vec(first(random_problem(H * B, 1; seed = 4, T)))
    sol = P.SciMLBase.solve(P.SciMLBase.LinearProblem(W, rhs), P.BlockDiagonalLU())
    @test P.SciMLBase.successful_retcode(sol)
    @test norm(Matrix(W) * sol.u - rhs) < 100 * eps(T) * norm(rhs)
    @test_throws ArgumentError P.block_shape(sparse(ones(T, 3, 3)))
    if isdefined(P.LinearSolve, :algorithm_interface_issues)      # LinearSolve ≥ 5
        @test isempty(P.LinearSolve.algorithm_interface_issues(P.BlockDiagonalLU()))
    end
end

"""End state of one token solve (a fresh output array each call)."""
function end_state(h0, Ut, C, bhn, solver; reset_after, tol = 1.0e-12, tau = 0.5)
    h1 = similar(h0)
    options = (; dt = 1.0, tau, reset_after, solver, rtol = tol, atol = tol)
    return h1, P.forward!(h1, h0, Ut, C, bhn; options...)
end

@testset "solvers agree on the end state" begin
    h0, Ut, C, bhn = random_problem(4, 3)
    solvers = ("Tsit5", "DP5", "Rosenbrock23", "Rodas4", "Rodas5P", "TRBDF2", "KenCarp4", "Kvaerno5")
    ends = [
        first(end_state(h0, Ut, C, bhn, s; reset_after = true, tol = 1.0e-10))
        for s in solvers
    ]
    @test all(norm(h - ends[1]) < 1.0e-6 for h in ends)
    @test_throws ArgumentError P.solver_spec("ode45")
    @test P.solver_spec("DOPRI5").name == "DP5"
end

const ADJOINT_CASES = (
    ("gauss", "Tsit5"),
    ("interpolating", "Tsit5"),
    ("backsolve", "Tsit5"),
    ("quadrature", "Tsit5"),
    ("gauss", "KenCarp4"),
    ("gauss", "Rodas5P"),
    ("quadrature", "Rodas5P"),
)

@testset "adjoint gradient matches finite differences ($T, $sensealg, $solver)" for T in (Float64, Float32),
        (sensealg, solver) in ADJOINT_CASES

    H, B = 3, 2
    h0, Ut, C, bhn = random_problem(H, B; seed = 7)
    w = reshape(collect(1.0:(H * B)), H, B) / (H * B)
    loss(h0, Ut) = sum(w .* first(end_state(h0, Ut, C, bhn, "Tsit5"; reset_after = false)))
    Th0, TUt, TC, Tbhn = T.(h0), T.(Ut), T.(C), T.(bhn)
    tol = T == Float64 ? 1.0e-10 : 1.0e-6
    fwd = last(end_state(Th0, TUt, TC, Tbhn, "Tsit5"; reset_after = false, tol))
    gh0, gUt, gC, gbhn = similar(Th0), similar(TUt), similar(TC), similar(Tbhn)
    P.backward!(gh0, gUt, gC, gbhn, fwd, T.(w); solver, sensealg, rtol = tol, atol = tol)
    e, E = zeros(H, B), zeros(H, 3H)
    e[2, 1] = E[1, 5] = 1.0e-6
    rtol = T == Float64 ? 1.0e-5 : 1.0e-3
    @test isapprox(gh0[2, 1], (loss(h0 + e, Ut) - loss(h0 - e, Ut)) / 2.0e-6; rtol)
    @test isapprox(gUt[1, 5], (loss(h0, Ut + E) - loss(h0, Ut - E)) / 2.0e-6; rtol)
end

@testset "failures carry their cause" begin
    h0, Ut, C, bhn = random_problem(3, 2)
    # tau = 1e-6 makes the field stiff: Tsit5's stable step needs more than maxiters steps.
    err = try
        end_state(h0, Ut, C, bhn, "Tsit5"; reset_after = false, tol = 1.0e-8, tau = 1.0e-6)
        nothing
    catch e
        e
    end
    @test err isa P.SolveFailure
    stage, solver, retcode, t, dt, nonfinite = P.failure_info(err)
    @test (stage, solver, retcode, nonfinite) == ("forward", "Tsit5", "MaxIters", false)
    @test 0 < t < 1 && dt > 0
    @test P.failure_info(ArgumentError("x")) === nothing

    watch = P.ReverseWatch(1.0)
    @test !watch(0.1, [1.0, 2.0], nothing, 0.5) && (watch.t, watch.dt) == (0.5, 0.1)
    @test watch(0.1, [NaN], nothing, 0.4) && watch.nonfinite
    @test_throws P.SolveFailure P.check_adjoint(P.ReverseWatch(1.0), P.solver_spec("Tsit5"), [1.0], [1.0])
    reached = P.ReverseWatch(1.0)
    P.TerminalCotangent([2.0], reached)(zeros(1), nothing, nothing, 0.0, 1)
    @test reached.reached && P.check_adjoint(reached, P.solver_spec("Tsit5"), [1.0], [1.0]) === nothing
end
