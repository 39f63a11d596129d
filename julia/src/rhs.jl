# The GRU-ODE vector field, in place and branch-free, with its analytic Jacobian.
#
# State u: (H, B), one column per batch member. Parameters p: one flat vector
#   p = [vec(Uᵀ) (3H·H); vec(C) (3H·B); b_hn (H)]
# where Uᵀ is (H, 3H) (torch's row-major U = [U_r; U_z; U_h] read column-major)
# and C is the per-batch input drive (3H, B) with row blocks [c_r; c_z; c_h].
#   r = σ(c_r + U_r h),  z = σ(c_z + U_z h)
#   ResetBefore (Cho et al.):  g = tanh(c_h + b_hn + U_h (r ⊙ h))
#   ResetAfter (torch/cuDNN):  g = tanh(c_h + r ⊙ (U_h h + b_hn))
#   dh/dt = κ (1 - z) ⊙ (g - h),  κ = 1/τ
# ResetBefore adds b_hn inside the tanh, which is the same as folding it into c_h.

"""Which candidate-gate formula the field uses; chosen by dispatch, never by `if`."""
abstract type ResetVariant end
struct ResetBefore <: ResetVariant end
struct ResetAfter <: ResetVariant end

reset_variant(reset_after::Bool) = reset_after ? ResetAfter() : ResetBefore()

"""
    GRUODEField(reset, H, B, κ, u0)

Callable `(du, u, p, t)` GRU-ODE right-hand side for `B` independent states of size
`H`. `pre` (3H, B) and `tmp` (H, B) are scratch buffers reused for the state's own
array type; other element types (AD duals) get fresh buffers.
"""
struct GRUODEField{R <: ResetVariant, T, M <: AbstractMatrix{T}}
    reset::R
    H::Int
    B::Int
    κ::T
    pre::M
    tmp::M
end

function GRUODEField(reset::ResetVariant, H::Int, B::Int, κ, u0::AbstractMatrix)
    return GRUODEField(reset, H, B, κ, similar(u0, 3H, B), similar(u0, H, B))
end

parameter_length(H::Int, B::Int) = 3H * H + 3H * B + H

"""`x` as the (H, B) state layout: SciMLSensitivity hands over flat adjoint vectors."""
as_state(x::AbstractArray, f::GRUODEField) = reshape(x, f.H, f.B)

"""Views `(Uᵀ, C, b_hn)` into the flat parameter vector `p`."""
function parameter_views(p::AbstractVector, H::Int, B::Int)
    nU = 3H * H
    nC = 3H * B
    Ut = reshape(view(p, 1:nU), H, 3H)
    C = reshape(view(p, (nU + 1):(nU + nC)), 3H, B)
    bhn = view(p, (nU + nC + 1):(nU + nC + H))
    return Ut, C, bhn
end

"""Flat parameter vector on the device of `u0` from `Uᵀ` (H, 3H), `C` (3H, B), `b_hn`."""
function pack_parameters(u0::AbstractMatrix, Ut, C, bhn)
    H, B = size(u0)
    p = similar(u0, parameter_length(H, B))
    pUt, pC, pbhn = parameter_views(p, H, B)
    copyto!(pUt, Ut)
    copyto!(pC, C)
    copy_bias!(pbhn, bhn)
    return p
end

# `nothing` stands for "no b_hn" (parameters) or "no b_hn gradient wanted" (outputs).
copy_bias!(dst, src) = copyto!(dst, src)
copy_bias!(dst, ::Nothing) = fill!(dst, false)
copy_bias!(::Nothing, _) = nothing
copy_bias!(::Nothing, ::Nothing) = nothing

sigmoid(x) = inv(one(x) + exp(-x))

scratch(f::GRUODEField{R, T, M}, ::M, ::AbstractVector{T}) where {R, T, M} = (f.pre, f.tmp)
function scratch(f::GRUODEField, u, p)
    S = promote_type(eltype(u), eltype(p))
    return similar(u, S, 3f.H, f.B), similar(u, S, f.H, f.B)
end

"""Fill `pre` with the activations [r; z; g]; `tmp` keeps r⊙h or U_h h + b_hn."""
function gates!(pre, tmp, ::ResetBefore, h, Ut, C, bhn)
    H = size(h, 1)
    rz, Crz = view(pre, 1:2H, :), view(C, 1:2H, :)
    mul!(rz, transpose(view(Ut, :, 1:2H)), h)
    @. rz = sigmoid(rz + Crz)
    r = view(pre, 1:H, :)
    @. tmp = r * h
    g, Ch = view(pre, (2H + 1):3H, :), view(C, (2H + 1):3H, :)
    mul!(g, transpose(view(Ut, :, (2H + 1):3H)), tmp)
    @. g = tanh(g + Ch + bhn)
    return nothing
end

function gates!(pre, tmp, ::ResetAfter, h, Ut, C, bhn)
    H = size(h, 1)
    mul!(pre, transpose(Ut), h)
    rz, Crz = view(pre, 1:2H, :), view(C, 1:2H, :)
    @. rz = sigmoid(rz + Crz)
    r, g, Ch = view(pre, 1:H, :), view(pre, (2H + 1):3H, :), view(C, (2H + 1):3H, :)
    @. tmp = g + bhn
    @. g = tanh(Ch + r * tmp)
    return nothing
end

function (f::GRUODEField)(du, u, p, t)
    h, dh = as_state(u, f), as_state(du, f)
    pre, tmp = scratch(f, h, p)
    gates!(pre, tmp, f.reset, h, parameter_views(p, f.H, f.B)...)
    z, g = view(pre, (f.H + 1):(2f.H), :), view(pre, (2f.H + 1):(3f.H), :)
    dh .= @. f.κ * (1 - z) * (g - h)
    return nothing
end

# The field is autonomous: ∂f/∂t = 0 (saves Rosenbrock methods an AD pass over t).
zero_tgrad!(dT, u, p, t) = fill!(dT, false)

const PROTOTYPES = Dict{Tuple{DataType, Int, Int}, SparseMatrixCSC}()

"""
    block_jacobian_prototype(T, H, B)

Sparse (HB × HB) pattern with B dense H×H diagonal blocks: batch members do not
interact. Column j = (b-1)H + k stores rows (b-1)H+1 : bH, so `nonzeros(J)` read
as an (H, H, B) array holds block b's entry (i, k) at [i, k, b]. The transpose has
the same pattern, so the adjoint's -Jᵀ keeps this layout. Built once per (T, H, B)
and shared: solvers and SciMLSensitivity only read it (they copy or `similar` it).
"""
function block_jacobian_prototype(::Type{T}, H::Int, B::Int) where {T}
    return get!(() -> build_block_prototype(T, H, B), PROTOTYPES, (T, H, B))::SparseMatrixCSC{T, Int}
end

function build_block_prototype(::Type{T}, H::Int, B::Int) where {T}
    n = H * B
    colptr = collect(1:H:(n * H + 1))
    rowval = [(div(j - 1, H) * H + i) for i in 1:H, j in 1:n]
    return SparseMatrixCSC(n, n, colptr, vec(rowval), zeros(T, H * n))
end

"""Callable `(J, u, p, t)` filling the block-diagonal analytic Jacobian of `field`."""
struct GRUODEJacobian{F <: GRUODEField}
    field::F
end

function (jac::GRUODEJacobian)(J::SparseMatrixCSC, u, p, t)
    f = jac.field
    h = as_state(u, f)
    pre, tmp = scratch(f, h, p)
    Ut, C, bhn = parameter_views(p, f.H, f.B)
    gates!(pre, tmp, f.reset, h, Ut, C, bhn)
    blocks = reshape(nonzeros(J), f.H, f.H, f.B)
    M, K = similar(h, f.H, f.H), similar(h, f.H, f.H)
    for b in 1:(f.B)
        columns = (view(h, :, b), view(pre, :, b), view(tmp, :, b))
        jacobian_block!(view(blocks, :, :, b), M, K, f, columns..., Ut)
    end
    return nothing
end

# J_b = κ[diag((1-z)(1-g²)) M - diag((g-h) z (1-z)) U_z - diag(1-z)], M = ∂(tanh argument)/∂h.
function jacobian_block!(Jb, M, K, f::GRUODEField, h, a, n, Ut)
    H, κ = f.H, f.κ
    r, z, g = view(a, 1:H), view(a, (H + 1):2H), view(a, (2H + 1):3H)
    candidate_jacobian!(M, K, f.reset, h, r, n, Ut)
    Uz = transpose(view(Ut, :, (H + 1):2H))
    @. Jb = κ * ((1 - z) * (1 - g^2) * M - (g - h) * z * (1 - z) * Uz)
    for i in 1:H
        Jb[i, i] -= κ * (1 - z[i])
    end
    return nothing
end

# ResetBefore: ∂/∂h U_h (r⊙h) = U_h [diag(r) + diag(h r (1-r)) U_r].
function candidate_jacobian!(M, K, ::ResetBefore, h, r, n, Ut)
    H = length(h)
    Ur = transpose(view(Ut, :, 1:H))
    @. K = h * r * (1 - r) * Ur
    for i in 1:H
        K[i, i] += r[i]
    end
    mul!(M, transpose(view(Ut, :, (2H + 1):3H)), K)
    return nothing
end

# ResetAfter: ∂/∂h r ⊙ n = diag(r) U_h + diag(n r (1-r)) U_r, n = U_h h + b_hn.
function candidate_jacobian!(M, K, ::ResetAfter, h, r, n, Ut)
    H = length(h)
    Ur, Uh = transpose(view(Ut, :, 1:H)), transpose(view(Ut, :, (2H + 1):3H))
    @. M = r * Uh + n * r * (1 - r) * Ur
    return nothing
end

"""
    gruode_function(field, u0)

`ODEFunction` for `field` with its analytic VJPs (`vjp`, `vjp_p`; SciMLSensitivity
≥ 7.97 uses them instead of differentiating the field) and `tgrad`. On CPU `Array`s
it also carries the analytic Jacobian and its sparse block prototype
(SciMLSensitivity ≥ 7.98 reuses both for −Jᵀ in stiff Gauss and Quadrature
adjoints); on other arrays (CuArray) it has none (explicit solvers only). Fully
specialized: SciMLSensitivity re-wraps FunctionWrapper-wrapped fields without
their `vjp`, and nothing here needs the wrappers' compile-time savings.
"""
function gruode_function(field::GRUODEField, u0::Array{T}) where {T}
    return ODEFunction{true, FullSpecialize}(
        field;
        jac = GRUODEJacobian(field),
        jac_prototype = block_jacobian_prototype(T, field.H, field.B),
        adjoint_functions(field, u0)...,
    )
end

function gruode_function(field::GRUODEField, u0::AbstractArray)
    return ODEFunction{true, FullSpecialize}(field; adjoint_functions(field, u0)...)
end
