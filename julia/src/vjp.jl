# Analytic vector-Jacobian products of the GRU-ODE field, for SciMLSensitivity.
#
# SciMLSensitivity (≥ 7.97) prefers an ODEFunction's `vjp(dλ, λ, u, p, t)` and
# `vjp_p(dp, λ, u, p, t)` over differentiating the field: both return the plain
# products (∂f/∂u)ᵀλ and (∂f/∂p)ᵀλ (the adjoint negates them itself). With the
# activations of `gates!` and κ = 1/τ, the cotangents of the gate pre-activations are
#   a_g = κ λ (1 - z)(1 - g²),   a_z = κ λ (h - g) z (1 - z)
#   ResetBefore: m = U_hᵀ a_g,            a_r = m ⊙ h ⊙ r (1 - r)
#   ResetAfter:  a_n = a_g ⊙ r (n = U_h h + b_hn),  a_r = a_g ⊙ n ⊙ r (1 - r)
# and
#   (∂f/∂h)ᵀλ = -κ λ (1 - z) + [ResetBefore: r ⊙ m + U_rᵀ a_r + U_zᵀ a_z
#                               ResetAfter:  U_rᵀ a_r + U_zᵀ a_z + U_hᵀ a_n]
#   ∂/∂Uᵀ: ResetBefore [h a_rᵀ, h a_zᵀ, (r ⊙ h) a_gᵀ]; ResetAfter h [a_r; a_z; a_n]ᵀ
#   ∂/∂C = [a_r; a_z; a_g],  ∂/∂b_hn = Σ_batch (ResetBefore a_g, ResetAfter a_n)
# These are the formulas of pyjlode's native GRU-ODE VJP in this package's layout
# (Uᵀ is the (H, 3H) block of p, so U_hᵀ a_g is `Ut[:, 2H+1:3H] * a_g`).

"""
    AdjointBuffers(u0)

Scratch shared by `StateVJP` and `ParamVJP` (SciMLSensitivity calls them one after the
other, never interleaved): `apre` (3H, B) holds [a_r; a_z; a_g] (ResetBefore) or
[a_r; a_z; a_n] (ResetAfter) and `aux` (H, B) holds m (ResetBefore) or a_g (ResetAfter).
"""
struct AdjointBuffers{M <: AbstractMatrix}
    apre::M
    aux::M
end

AdjointBuffers(f::GRUODEField, u0::AbstractMatrix) = AdjointBuffers(similar(u0, 3f.H, f.B), similar(u0, f.H, f.B))

"""`vjp(dλ, λ, u, p, t)`: dλ = (∂f/∂u)ᵀλ."""
struct StateVJP{F <: GRUODEField, A <: AdjointBuffers}
    field::F
    buffers::A
end

"""`vjp_p(dp, λ, u, p, t)`: dp = (∂f/∂p)ᵀλ in the flat layout of `pack_parameters`."""
struct ParamVJP{F <: GRUODEField, A <: AdjointBuffers}
    field::F
    buffers::A
end

"""Keyword arguments of `ODEFunction` that serve the adjoint: `vjp`, `vjp_p`, `tgrad`."""
function adjoint_functions(field::GRUODEField, u0::AbstractMatrix)
    buffers = AdjointBuffers(field, u0)
    return (; vjp = StateVJP(field, buffers), vjp_p = ParamVJP(field, buffers), tgrad = zero_tgrad!)
end

adjoint_scratch(b::AdjointBuffers{M}, ::M) where {M} = (b.apre, b.aux)
function adjoint_scratch(b::AdjointBuffers, h::AbstractMatrix)
    return similar(h, size(b.apre)...), similar(h, size(b.aux)...)
end

"""Gates at `h` into the field's scratch and the pre-activation cotangents into `apre`, `aux`."""
function cotangents!(f::GRUODEField, buffers::AdjointBuffers, λ, h, p)
    pre, tmp = scratch(f, h, p)
    Ut, C, bhn = parameter_views(p, f.H, f.B)
    gates!(pre, tmp, f.reset, h, Ut, C, bhn)
    apre, aux = adjoint_scratch(buffers, h)
    gate_cotangents!(apre, aux, f.reset, f.κ, λ, h, pre, tmp, Ut)
    return pre, tmp, apre, aux, Ut
end

function gate_cotangents!(apre, aux, ::ResetBefore, κ, λ, h, pre, tmp, Ut)
    H = size(h, 1)
    r, z, g = view(pre, 1:H, :), view(pre, (H + 1):2H, :), view(pre, (2H + 1):3H, :)
    ar, az, ag = view(apre, 1:H, :), view(apre, (H + 1):2H, :), view(apre, (2H + 1):3H, :)
    ag .= @. κ * λ * (1 - z) * (1 - g^2)
    az .= @. κ * λ * (h - g) * z * (1 - z)
    mul!(aux, view(Ut, :, (2H + 1):3H), ag)             # m = U_hᵀ a_g
    ar .= @. aux * h * r * (1 - r)
    return nothing
end

function gate_cotangents!(apre, aux, ::ResetAfter, κ, λ, h, pre, tmp, Ut)
    H = size(h, 1)
    r, z, g = view(pre, 1:H, :), view(pre, (H + 1):2H, :), view(pre, (2H + 1):3H, :)
    ar, az, an = view(apre, 1:H, :), view(apre, (H + 1):2H, :), view(apre, (2H + 1):3H, :)
    aux .= @. κ * λ * (1 - z) * (1 - g^2)                 # a_g
    az .= @. κ * λ * (h - g) * z * (1 - z)
    ar .= @. aux * tmp * r * (1 - r)                       # tmp = n = U_h h + b_hn
    an .= @. aux * r
    return nothing
end

function (v::StateVJP)(dλ, λ, u, p, t)
    f = v.field
    Λ, h, out = as_state(λ, f), as_state(u, f), as_state(dλ, f)
    pre, _, apre, aux, Ut = cotangents!(f, v.buffers, Λ, h, p)
    state_vjp!(out, f.reset, f.κ, Λ, h, pre, apre, aux, Ut)
    return nothing
end

function state_vjp!(out, ::ResetBefore, κ, Λ, h, pre, apre, aux, Ut)
    H = size(h, 1)
    r, z = view(pre, 1:H, :), view(pre, (H + 1):2H, :)
    @. out = r * aux - κ * Λ * (1 - z)
    mul!(out, view(Ut, :, 1:2H), view(apre, 1:2H, :), true, true)
    return nothing
end

function state_vjp!(out, ::ResetAfter, κ, Λ, h, pre, apre, aux, Ut)
    H = size(h, 1)
    z = view(pre, (H + 1):2H, :)
    @. out = -κ * Λ * (1 - z)
    mul!(out, Ut, apre, true, true)
    return nothing
end

function (v::ParamVJP)(dp, λ, u, p, t)
    f = v.field
    Λ, h = as_state(λ, f), as_state(u, f)
    _, tmp, apre, aux, _ = cotangents!(f, v.buffers, Λ, h, p)
    gUt, gC, gbhn = parameter_views(vec(dp), f.H, f.B)
    param_vjp!(gUt, gC, gbhn, f.reset, h, tmp, apre, aux)
    return nothing
end

function param_vjp!(gUt, gC, gbhn, ::ResetBefore, h, tmp, apre, aux)
    H = size(h, 1)
    ag = view(apre, (2H + 1):3H, :)
    mul!(view(gUt, :, 1:2H), h, transpose(view(apre, 1:2H, :)))
    mul!(view(gUt, :, (2H + 1):3H), tmp, transpose(ag))  # tmp = r ⊙ h
    gC .= apre
    sum!(gbhn, ag)
    return nothing
end

function param_vjp!(gUt, gC, gbhn, ::ResetAfter, h, tmp, apre, aux)
    H = size(h, 1)
    mul!(gUt, h, transpose(apre))
    view(gC, 1:2H, :) .= view(apre, 1:2H, :)
    view(gC, (2H + 1):3H, :) .= aux                       # ∂/∂c_h = a_g
    sum!(gbhn, view(apre, (2H + 1):3H, :))
    return nothing
end
