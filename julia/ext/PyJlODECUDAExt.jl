"""
    PyJlODECUDAExt

Loaded when CUDA.jl is: CuArrays arriving from torch through DLPack are written by
CUDA.jl on its own task-local stream, so the bridge waits for the device before
torch reads the results (torch synchronizes its side before calling Julia).
"""
module PyJlODECUDAExt

using CUDA: CuArray, synchronize
using PyJlODE: PyJlODE

PyJlODE.device_sync(::CuArray) = synchronize()

end # module PyJlODECUDAExt
