# Julia-side checks of PyJlODE (run with `julia --project=julia -e 'using Pkg; Pkg.test()'`).
# Not run where pyjlode was developed (no Julia there); the Python tests cover the bridge.

using PyJlODE
using Test
using LinearAlgebra: norm
using SparseArrays: rowvals, nnz

const P = PyJlODE

function random_problem(H, B; seed = 1)
    state = Float64(seed)
    next() = (state = mod(state * 16807.0, 2147483647.0); state / 2147483647.0 - 0.5)
    return (
        [next() for _ in 1:H, _ in 1:B],
        [next() for _ in 1:H, _ in 1:(3H)],
        [next() for _ in 1:(3H), _ in 1:B],
        [next() for _ in 1:H],
    )
end

function central_jacobian(f, u, p)
    n = length(u)
    J = zeros(n, n)
    du₊, du₋ = similar(u), similar(u)
    for k in 1:n
        e = zeros(size(u))
        e[k] = 1.0e-6
        f(du₊, u + e, p, 0.0)
        f(du₋, u - e, p, 0.0)
        J[:, k] = vec(du₊ - du₋) / 2.0e-6
    end
    return J
end

@testset "block prototype is block diagonal" begin
    J = P.block_jacobian_prototype(Float64, 3, 2)
    @test size(J) == (6, 6) && nnz(J) == 18
    @test rowvals(J)[1:3] == 1:3 && rowvals(J)[10:12] == 4:6
end

@testset "analytic Jacobian, reset_after = $reset_after" for reset_after in (false, true)
    H, B = 4, 3
    h0, Ut, C, bhn = random_problem(H, B)
    prob = P.gruode_problem(h0, Ut, C, bhn, 1.0, 0.7, reset_after)
    J = copy(prob.f.jac_prototype)
    prob.f.jac(J, prob.u0, prob.p, 0.0)
    @test norm(Matrix(J) - central_jacobian(prob.f.f, prob.u0, prob.p)) < 1.0e-7
end

"""End state of one token solve (a fresh output array each call)."""
function end_state(h0, Ut, C, bhn, solver; reset_after, tol = 1.0e-12)
    h1 = similar(h0)
    options = (; dt = 1.0, tau = 0.5, reset_after, solver, rtol = tol, atol = tol)
    return h1, P.forward!(h1, h0, Ut, C, bhn; options...)
end

@testset "solvers agree on the end state" begin
    h0, Ut, C, bhn = random_problem(4, 3)
    solvers = ("Tsit5", "DP5", "Rodas5P", "KenCarp4", "Kvaerno5")
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
    ("gauss", "KenCarp4"),
    ("quadrature", "Rodas5P"),
)

@testset "adjoint gradient matches finite differences ($sensealg, $solver)" for (
        sensealg,
        solver,
    ) in ADJOINT_CASES
    H, B = 3, 2
    h0, Ut, C, bhn = random_problem(H, B; seed = 7)
    w = reshape(collect(1.0:(H * B)), H, B) / (H * B)
    loss(h0, Ut) = sum(w .* first(end_state(h0, Ut, C, bhn, "Tsit5"; reset_after = false)))
    fwd = last(end_state(h0, Ut, C, bhn, "Tsit5"; reset_after = false))
    gh0, gUt, gC, gbhn = similar(h0), similar(Ut), similar(C), similar(bhn)
    tols = (; rtol = 1.0e-10, atol = 1.0e-10)
    P.backward!(gh0, gUt, gC, gbhn, fwd, w; solver, sensealg, tols...)
    e, E = zeros(H, B), zeros(H, 3H)
    e[2, 1] = E[1, 5] = 1.0e-6
    @test isapprox(gh0[2, 1], (loss(h0 + e, Ut) - loss(h0 - e, Ut)) / 2.0e-6; rtol = 1.0e-5)
    @test isapprox(gUt[1, 5], (loss(h0, Ut + E) - loss(h0, Ut - E)) / 2.0e-6; rtol = 1.0e-5)
end
