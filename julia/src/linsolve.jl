# Linear solves of implicit steps on the block-diagonal W = J - M/(γ dt).
#
# Batch members are independent, so W has B dense H×H diagonal blocks (the pattern of
# `block_jacobian_prototype`; the adjoint's -Jᵀ has the same one). LinearSolve's
# default for such a sparse matrix is a sparse LU (a generic pure-Julia KLU for
# Float32). `BlockDiagonalLU` factors each block with a dense LAPACK LU instead,
# through LinearSolve's documented algorithm interface (`needs_concrete_A`,
# `init_cacheval`, `solve!`; LinearSolve docs, "Developing New Linear Solvers").

"""
    BlockDiagonalLU()

LinearSolve algorithm for sparse matrices with the block-diagonal pattern of
`block_jacobian_prototype`: one dense LU per H×H block, reused until W changes.
"""
struct BlockDiagonalLU <: LinearSolve.SciMLLinearSolveAlgorithm end

LinearSolve.needs_concrete_A(::BlockDiagonalLU) = true

"""Block copies factored in place and their LU factorizations."""
struct BlockLUCache{T, F}
    blocks::Vector{Matrix{T}}
    lus::Vector{F}
end

"""(H, B) of a matrix with the block pattern; anything else is an error, not a slow path."""
function block_shape(W::SparseMatrixCSC)
    n = size(W, 1)
    H = W.colptr[2] - W.colptr[1]
    fits = H > 0 && n % H == 0 && size(W, 2) == n && nnz(W) == H * n &&
        all(j -> rowvals(W)[W.colptr[j]] == (j - 1) ÷ H * H + 1, 1:n)
    fits || throw(ArgumentError("BlockDiagonalLU needs the block-diagonal pattern of block_jacobian_prototype"))
    return H, n ÷ H
end
block_shape(W) = throw(ArgumentError("BlockDiagonalLU needs a SparseMatrixCSC, got $(typeof(W))"))

function LinearSolve.init_cacheval(
        ::BlockDiagonalLU, A, b, u, Pl, Pr, maxiters::Int, abstol, reltol, verbose, assumptions,
    )
    W = convert(AbstractMatrix, A)
    H, B = block_shape(W)
    blocks = [Matrix{eltype(W)}(I, H, H) for _ in 1:B]
    return BlockLUCache(blocks, [lu!(copy(block); check = false) for block in blocks])
end

function refactor!(c::BlockLUCache, W::SparseMatrixCSC)
    H, B = block_shape(W)
    values = reshape(nonzeros(W), H, H, B)
    for k in 1:B
        c.lus[k] = lu!(copyto!(c.blocks[k], view(values, :, :, k)); check = false)
    end
    return nothing
end

function block_ldiv!(x, c::BlockLUCache, rhs)
    copyto!(x, rhs)
    X = reshape(x, size(first(c.blocks), 1), length(c.blocks))
    for k in eachindex(c.lus)
        ldiv!(c.lus[k], view(X, :, k))
    end
    return x
end

function SciMLBase.solve!(cache::LinearSolve.LinearCache, alg::BlockDiagonalLU; kwargs...)
    c = cache.cacheval
    if cache.isfresh
        refactor!(c, convert(AbstractMatrix, cache.A))
        cache.isfresh = false
    end
    # A singular block fails the step: NaNs make the solver reject it and shrink dt.
    ok = all(issuccess, c.lus)
    ok ? block_ldiv!(cache.u, c, cache.b) : fill!(cache.u, NaN)
    retcode = ok ? ReturnCode.Success : ReturnCode.Infeasible
    return SciMLBase.build_linear_solution(alg, cache.u, nothing, cache; retcode)
end
