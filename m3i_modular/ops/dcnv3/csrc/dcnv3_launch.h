// Interface between the host binding (dcnv3_binding.cpp, torch headers) and the kernels (dcnv3_kernels.cu,
// CUDA headers only: keeping torch out of nvcc's way keeps the build short).
#pragma once
#include <cuda_runtime_api.h>

struct Dcnv3Shape {
    int batch, height_in, width_in, height_out, width_out;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
    int group, group_channels;
    float offset_scale;
};

// One forward and one backward entry point per dtype (float, half, bfloat16). Tensors are contiguous
// channels-last: input (N, H, W, G*C), offset (N, Ho, Wo, G*P*2), mask (N, Ho, Wo, G*P), output (N, Ho, Wo, G*C).
// grad_input_acc is a zeroed float32 buffer shaped like input (atomics accumulate there); grad_offset and
// grad_mask are written in the tensor dtype, every element exactly once.
#define M3I_DCNV3_DECLARE(SUFFIX)                                                                      \
    extern "C" cudaError_t m3i_dcnv3_forward_##SUFFIX(const Dcnv3Shape *shape, const void *input,       \
                                                      const void *offset, const void *mask, void *output, \
                                                      cudaStream_t stream);                               \
    extern "C" cudaError_t m3i_dcnv3_backward_##SUFFIX(                                                  \
        const Dcnv3Shape *shape, const void *grad_output, const void *input, const void *offset,          \
        const void *mask, float *grad_input_acc, void *grad_offset, void *grad_mask, cudaStream_t stream);

M3I_DCNV3_DECLARE(float)
M3I_DCNV3_DECLARE(half)
M3I_DCNV3_DECLARE(bfloat16)
