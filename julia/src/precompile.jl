# PrecompileTools workload: the calls the Python bridge makes in training — Float32
# (torch's default dtype) and Float64 state, both reset variants, the default path
# (Tsit5 both ways, Gauss adjoint) and the stiff backward paths (KenCarp4, Rodas5P,
# Gauss adjoint) — so the first token of a session does not compile them.
# The bridge passes PythonCall PyArrays, which only changes the cheap copy-in and
# copy-out methods; the solve and adjoint specializations are the ones below.

const WORKLOAD_PATHS = (
    (forward = "Tsit5", backward = "Tsit5", sensealg = "gauss"),
    (forward = "Tsit5", backward = "KenCarp4", sensealg = "gauss"),
    (forward = "Tsit5", backward = "Rodas5P", sensealg = "gauss"),
)

function run_workload(::Type{T}, H::Int, B::Int) where {T}
    h0, h1, gh0 = fill(T(0.1), H, B), zeros(T, H, B), zeros(T, H, B)
    Ut, C, bhn = fill(T(0.05), H, 3H), fill(T(0.1), 3H, B), zeros(T, H)
    gUt, gC, gbhn, gh1 = similar(Ut), similar(C), similar(bhn), ones(T, H, B)
    tols = (; rtol = 1.0e-3, atol = 1.0e-5)
    for path in WORKLOAD_PATHS, reset_after in (false, true)
        fwd = forward!(h1, h0, Ut, C, bhn; dt = 1.0, tau = 1.0, reset_after, solver = path.forward, tols...)
        forward_stats(fwd)
        backward!(gh0, gUt, gC, gbhn, fwd, gh1; solver = path.backward, sensealg = path.sensealg, tols...)
    end
    return nothing
end

@setup_workload begin
    @compile_workload begin
        # A failing workload must not make the package unloadable: it only warms caches.
        try
            run_workload(Float32, 3, 2)
            run_workload(Float64, 3, 2)
            failure_info(SolveFailure("forward", "Tsit5", "MaxIters", 0.0, 0.0, false))
        catch err
            @warn "PyJlODE precompile workload failed; first calls will compile" exception = err
        end
    end
end
