// Host side of the DCNv3 op: argument checks, output allocation, dtype dispatch to the kernels of
// dcnv3_kernels.cu, and registration as torch.ops.m3i_dcnv3.{forward,backward} (CUDA dispatch key).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "dcnv3_launch.h"

namespace {

Dcnv3Shape make_shape(const at::Tensor &input, const at::Tensor &offset, const at::Tensor &mask, int64_t kernel_h,
                      int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                      int64_t dilation_h, int64_t dilation_w, int64_t group, int64_t group_channels,
                      double offset_scale) {
    TORCH_CHECK(input.is_cuda() && offset.is_cuda() && mask.is_cuda(), "dcnv3: tensors must be on a CUDA device");
    TORCH_CHECK(input.dim() == 4 && offset.dim() == 4 && mask.dim() == 4, "dcnv3: tensors must be 4-D channels-last");
    TORCH_CHECK(offset.scalar_type() == input.scalar_type() && mask.scalar_type() == input.scalar_type(),
                "dcnv3: input, offset and mask must share one dtype");
    TORCH_CHECK(input.is_contiguous() && offset.is_contiguous() && mask.is_contiguous(),
                "dcnv3: tensors must be contiguous");
    TORCH_CHECK(kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 && dilation_h > 0 && dilation_w > 0 &&
                    group > 0 && group_channels > 0 && pad_h >= 0 && pad_w >= 0,
                "dcnv3: sizes must be positive");
    TORCH_CHECK(input.size(3) == group * group_channels, "dcnv3: input channels != group * group_channels");
    Dcnv3Shape s;
    s.batch = static_cast<int>(input.size(0));
    s.height_in = static_cast<int>(input.size(1));
    s.width_in = static_cast<int>(input.size(2));
    s.kernel_h = static_cast<int>(kernel_h);
    s.kernel_w = static_cast<int>(kernel_w);
    s.stride_h = static_cast<int>(stride_h);
    s.stride_w = static_cast<int>(stride_w);
    s.pad_h = static_cast<int>(pad_h);
    s.pad_w = static_cast<int>(pad_w);
    s.dilation_h = static_cast<int>(dilation_h);
    s.dilation_w = static_cast<int>(dilation_w);
    s.group = static_cast<int>(group);
    s.group_channels = static_cast<int>(group_channels);
    s.offset_scale = static_cast<float>(offset_scale);
    s.height_out = (s.height_in + 2 * s.pad_h - (s.dilation_h * (s.kernel_h - 1) + 1)) / s.stride_h + 1;
    s.width_out = (s.width_in + 2 * s.pad_w - (s.dilation_w * (s.kernel_w - 1) + 1)) / s.stride_w + 1;
    TORCH_CHECK(s.height_out > 0 && s.width_out > 0, "dcnv3: input too small for the kernel");
    const int64_t points = kernel_h * kernel_w;
    TORCH_CHECK(offset.size(0) == s.batch && offset.size(1) == s.height_out && offset.size(2) == s.width_out &&
                    offset.size(3) == group * points * 2,
                "dcnv3: offset must be (N, H_out, W_out, group*kh*kw*2)");
    TORCH_CHECK(mask.size(0) == s.batch && mask.size(1) == s.height_out && mask.size(2) == s.width_out &&
                    mask.size(3) == group * points,
                "dcnv3: mask must be (N, H_out, W_out, group*kh*kw)");
    // Kernels index with 32-bit ints.
    const int64_t limit = std::numeric_limits<int>::max();
    TORCH_CHECK(input.numel() < limit && offset.numel() < limit &&
                    int64_t(s.batch) * s.height_out * s.width_out * group * group_channels < limit,
                "dcnv3: tensors too large for 32-bit indexing; split the batch");
    return s;
}

void check(cudaError_t err) { TORCH_CHECK(err == cudaSuccess, "dcnv3 kernel launch failed: ", cudaGetErrorString(err)); }

at::Tensor dcnv3_forward(const at::Tensor &input, const at::Tensor &offset, const at::Tensor &mask, int64_t kernel_h,
                         int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                         int64_t dilation_h, int64_t dilation_w, int64_t group, int64_t group_channels,
                         double offset_scale) {
    const Dcnv3Shape s = make_shape(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                    dilation_h, dilation_w, group, group_channels, offset_scale);
    const c10::cuda::CUDAGuard guard(input.device());
    auto output = at::empty({s.batch, s.height_out, s.width_out, group * group_channels}, input.options());
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
    switch (input.scalar_type()) {
        case at::kFloat:
            check(m3i_dcnv3_forward_float(&s, input.data_ptr(), offset.data_ptr(), mask.data_ptr(), output.data_ptr(), stream));
            break;
        case at::kHalf:
            check(m3i_dcnv3_forward_half(&s, input.data_ptr(), offset.data_ptr(), mask.data_ptr(), output.data_ptr(), stream));
            break;
        case at::kBFloat16:
            check(m3i_dcnv3_forward_bfloat16(&s, input.data_ptr(), offset.data_ptr(), mask.data_ptr(), output.data_ptr(), stream));
            break;
        default:
            TORCH_CHECK(false, "dcnv3: unsupported dtype ", input.scalar_type(), " (float32, float16, bfloat16)");
    }
    return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward(
    const at::Tensor &grad_output, const at::Tensor &input, const at::Tensor &offset, const at::Tensor &mask,
    int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dilation_h, int64_t dilation_w, int64_t group, int64_t group_channels, double offset_scale) {
    const Dcnv3Shape s = make_shape(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                    dilation_h, dilation_w, group, group_channels, offset_scale);
    TORCH_CHECK(grad_output.is_cuda() && grad_output.scalar_type() == input.scalar_type() &&
                    grad_output.is_contiguous() && grad_output.dim() == 4 && grad_output.size(0) == s.batch &&
                    grad_output.size(1) == s.height_out && grad_output.size(2) == s.width_out &&
                    grad_output.size(3) == group * group_channels,
                "dcnv3: grad_output must be a contiguous tensor shaped like the output");
    const c10::cuda::CUDAGuard guard(input.device());
    auto grad_input_acc = at::zeros(input.sizes(), input.options().dtype(at::kFloat));
    auto grad_offset = at::empty_like(offset);
    auto grad_mask = at::empty_like(mask);
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
    float *acc = grad_input_acc.data_ptr<float>();
    switch (input.scalar_type()) {
        case at::kFloat:
            check(m3i_dcnv3_backward_float(&s, grad_output.data_ptr(), input.data_ptr(), offset.data_ptr(), mask.data_ptr(),
                                           acc, grad_offset.data_ptr(), grad_mask.data_ptr(), stream));
            break;
        case at::kHalf:
            check(m3i_dcnv3_backward_half(&s, grad_output.data_ptr(), input.data_ptr(), offset.data_ptr(), mask.data_ptr(),
                                          acc, grad_offset.data_ptr(), grad_mask.data_ptr(), stream));
            break;
        case at::kBFloat16:
            check(m3i_dcnv3_backward_bfloat16(&s, grad_output.data_ptr(), input.data_ptr(), offset.data_ptr(),
                                              mask.data_ptr(), acc, grad_offset.data_ptr(), grad_mask.data_ptr(), stream));
            break;
        default:
            TORCH_CHECK(false, "dcnv3: unsupported dtype ", input.scalar_type(), " (float32, float16, bfloat16)");
    }
    auto grad_input = input.scalar_type() == at::kFloat ? grad_input_acc : grad_input_acc.to(input.scalar_type());
    return {grad_input, grad_offset, grad_mask};
}

}  // namespace

TORCH_LIBRARY(m3i_dcnv3, m) {
    m.def("forward(Tensor input, Tensor offset, Tensor mask, int kernel_h, int kernel_w, int stride_h, int stride_w, "
          "int pad_h, int pad_w, int dilation_h, int dilation_w, int group, int group_channels, float offset_scale) "
          "-> Tensor");
    m.def("backward(Tensor grad_output, Tensor input, Tensor offset, Tensor mask, int kernel_h, int kernel_w, "
          "int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int group, "
          "int group_channels, float offset_scale) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(m3i_dcnv3, CUDA, m) {
    m.impl("forward", &dcnv3_forward);
    m.impl("backward", &dcnv3_backward);
}
