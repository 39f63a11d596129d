# PrecompileTools workload: the exact calls the Python bridge makes (Float64 CPU
# state, flat Float64 parameters, both reset variants), so the first token of a
# session does not pay for compiling the solver and adjoint code paths.
# The bridge passes PythonCall PyArrays, which only changes the cheap copy-in and
# copy-out methods; the solve and adjoint specializations are the ones below.

const WORKLOAD_SOLVERS = (("Tsit5", "gauss"), ("KenCarp4", "gauss"), ("Rodas5P", "gauss"))

function run_workload(::Type{T}, H::Int, B::Int) where {T}
    h0, h1, gh0 = fill(T(0.1), H, B), zeros(T, H, B), zeros(T, H, B)
    Ut, C, bhn = fill(T(0.05), H, 3H), fill(T(0.1), 3H, B), zeros(T, H)
    gUt, gC, gbhn, gh1 = similar(Ut), similar(C), similar(bhn), ones(T, H, B)
    for (solver, sensealg) in WORKLOAD_SOLVERS, reset_after in (false, true)
        fwd = forward!(
            h1,
            h0,
            Ut,
            C,
            bhn;
            dt = 1.0,
            tau = 1.0,
            reset_after,
            solver,
            rtol = 1.0e-6,
            atol = 1.0e-8,
        )
        forward_stats(fwd)
        backward!(
            gh0,
            gUt,
            gC,
            gbhn,
            fwd,
            gh1;
            solver,
            sensealg,
            rtol = 1.0e-6,
            atol = 1.0e-8,
        )
    end
    return nothing
end

@setup_workload begin
    @compile_workload begin
        # A failing workload must not make the package unloadable: it only warms caches.
        try
            run_workload(Float64, 3, 2)
        catch err
            @warn "PyJlODE precompile workload failed; first calls will compile" exception = err
        end
    end
end
