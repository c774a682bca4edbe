// DCNv3 forward/backward kernels. The index arithmetic mirrors the CPU loops in
// tests/ops/test_dcnv3_kernel_math.py line by line, which are checked against the grid_sample reference.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "dcnv3_launch.h"

namespace {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// Corner values and bilinear weights of one sampling location; shared by forward and backward so both
// read the same pixels. Corners outside the image contribute zero (valid flag false).
struct Bilinear {
    int ptr[4];      // element offsets of (y0,x0), (y0,x1), (y1,x0), (y1,x1) relative to the image base
    bool valid[4];
    float ly, lx;    // fractional parts
};

__device__ __forceinline__ Bilinear bilinear_setup(float y, float x, int height, int width, int row_stride,
                                                   int col_stride, int channel_base) {
    Bilinear b;
    const int y0 = static_cast<int>(floorf(y));
    const int x0 = static_cast<int>(floorf(x));
    b.ly = y - y0;
    b.lx = x - x0;
    const int ys[2] = {y0, y0 + 1};
    const int xs[2] = {x0, x0 + 1};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const int yy = ys[k >> 1], xx = xs[k & 1];
        b.valid[k] = yy >= 0 && yy <= height - 1 && xx >= 0 && xx <= width - 1;
        b.ptr[k] = yy * row_stride + xx * col_stride + channel_base;
    }
    return b;
}

__device__ __forceinline__ void decode_location(int loc, const Dcnv3Shape &s, int &n, int &h, int &w, int &g) {
    int t = loc;
    g = t % s.group;
    t /= s.group;
    w = t % s.width_out;
    t /= s.width_out;
    h = t % s.height_out;
    n = t / s.height_out;
}

// One thread per output element (n, h, w, g, c): consecutive threads read consecutive channels.
template <typename T>
__global__ void dcnv3_forward_kernel(Dcnv3Shape s, const T *__restrict__ input, const T *__restrict__ offset,
                                     const T *__restrict__ mask, T *__restrict__ output, int total) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int c = idx % s.group_channels;
    const int loc = idx / s.group_channels;  // flat (n, h, w, g)
    int n, h, w, g;
    decode_location(loc, s, n, h, w, g);
    const int points = s.kernel_h * s.kernel_w;
    const int col_stride = s.group * s.group_channels;
    const int row_stride = s.width_in * col_stride;
    const T *image = input + n * s.height_in * row_stride;
    const int channel_base = g * s.group_channels + c;
    const int centre_w = (s.dilation_w * (s.kernel_w - 1)) >> 1;
    const int centre_h = (s.dilation_h * (s.kernel_h - 1)) >> 1;
    const float base_x = static_cast<float>(w * s.stride_w - s.pad_w + centre_w);
    const float base_y = static_cast<float>(h * s.stride_h - s.pad_h + centre_h);
    const T *off = offset + loc * points * 2;
    const T *msk = mask + loc * points;
    float acc = 0.f;
    for (int i = 0; i < s.kernel_w; ++i) {
        for (int j = 0; j < s.kernel_h; ++j) {
            const int p = i * s.kernel_h + j;
            const float x = base_x + (i * s.dilation_w - centre_w + to_float(off[2 * p])) * s.offset_scale;
            const float y = base_y + (j * s.dilation_h - centre_h + to_float(off[2 * p + 1])) * s.offset_scale;
            if (!(y > -1.f && x > -1.f && y < s.height_in && x < s.width_in)) continue;
            const Bilinear b = bilinear_setup(y, x, s.height_in, s.width_in, row_stride, col_stride, channel_base);
            const float wts[4] = {(1.f - b.ly) * (1.f - b.lx), (1.f - b.ly) * b.lx, b.ly * (1.f - b.lx), b.ly * b.lx};
            float val = 0.f;
#pragma unroll
            for (int k = 0; k < 4; ++k)
                if (b.valid[k]) val += wts[k] * to_float(image[b.ptr[k]]);
            acc += to_float(msk[p]) * val;
        }
    }
    output[idx] = from_float<T>(acc);
}

// Sum over the `width` lanes of an aligned lane segment (width a power of two <= 32); all 32 lanes call it.
__device__ __forceinline__ float segment_sum(float v, int width) {
    for (int delta = width >> 1; delta > 0; delta >>= 1) v += __shfl_xor_sync(0xffffffffu, v, delta, width);
    return v;
}

// A segment of `seg` lanes (next power of two of group_channels, at most 32) owns one location (n, h, w, g);
// its lanes stride over the channels, then one shuffle reduction per point gives that point's offset and mask
// gradients, written by the segment's first lane. Input gradients go through float atomics.
template <typename T>
__global__ void dcnv3_backward_kernel(Dcnv3Shape s, const T *__restrict__ grad_output, const T *__restrict__ input,
                                      const T *__restrict__ offset, const T *__restrict__ mask,
                                      float *__restrict__ grad_input, T *__restrict__ grad_offset,
                                      T *__restrict__ grad_mask, int locations, int seg) {
    const int thread = blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = thread % seg;  // blockDim is a multiple of 32 and seg divides 32: segments never straddle warps
    const int loc = thread / seg;
    const bool active = loc < locations;  // inactive lanes still join the shuffles
    int n = 0, h = 0, w = 0, g = 0;
    if (active) decode_location(loc, s, n, h, w, g);
    const int points = s.kernel_h * s.kernel_w;
    const int col_stride = s.group * s.group_channels;
    const int row_stride = s.width_in * col_stride;
    const int image_offset = n * s.height_in * row_stride;
    const T *image = input + image_offset;
    float *grad_image = grad_input + image_offset;
    const int centre_w = (s.dilation_w * (s.kernel_w - 1)) >> 1;
    const int centre_h = (s.dilation_h * (s.kernel_h - 1)) >> 1;
    const float base_x = static_cast<float>(w * s.stride_w - s.pad_w + centre_w);
    const float base_y = static_cast<float>(h * s.stride_h - s.pad_h + centre_h);
    const int point_base = active ? loc * points : 0;
    const T *gout = grad_output + (active ? loc : 0) * s.group_channels;
    for (int i = 0; i < s.kernel_w; ++i) {
        for (int j = 0; j < s.kernel_h; ++j) {
            const int p = point_base + i * s.kernel_h + j;
            float g_x = 0.f, g_y = 0.f, g_m = 0.f;
            if (active) {
                const float x = base_x + (i * s.dilation_w - centre_w + to_float(offset[2 * p])) * s.offset_scale;
                const float y = base_y + (j * s.dilation_h - centre_h + to_float(offset[2 * p + 1])) * s.offset_scale;
                if (y > -1.f && x > -1.f && y < s.height_in && x < s.width_in) {
                    const float m = to_float(mask[p]);
                    const Bilinear b = bilinear_setup(y, x, s.height_in, s.width_in, row_stride, col_stride,
                                                      g * s.group_channels);
                    const float hy = 1.f - b.ly, hx = 1.f - b.lx;
                    const float wts[4] = {hy * hx, hy * b.lx, b.ly * hx, b.ly * b.lx};
                    for (int c = lane; c < s.group_channels; c += seg) {
                        const float top = to_float(gout[c]);
                        const float top_m = top * m;
                        float v[4];
#pragma unroll
                        for (int k = 0; k < 4; ++k) {
                            v[k] = b.valid[k] ? to_float(image[b.ptr[k] + c]) : 0.f;
                            if (b.valid[k]) atomicAdd(grad_image + b.ptr[k] + c, wts[k] * top_m);
                        }
                        const float val = wts[0] * v[0] + wts[1] * v[1] + wts[2] * v[2] + wts[3] * v[3];
                        g_m += top * val;
                        // d val / d x and d val / d y of the bilinear interpolant.
                        g_x += top_m * (hy * (v[1] - v[0]) + b.ly * (v[3] - v[2]));
                        g_y += top_m * (hx * (v[2] - v[0]) + b.lx * (v[3] - v[1]));
                    }
                }
            }
            g_x = segment_sum(g_x, seg);
            g_y = segment_sum(g_y, seg);
            g_m = segment_sum(g_m, seg);
            if (active && lane == 0) {
                grad_offset[2 * p] = from_float<T>(g_x * s.offset_scale);
                grad_offset[2 * p + 1] = from_float<T>(g_y * s.offset_scale);
                grad_mask[p] = from_float<T>(g_m);
            }
        }
    }
}

constexpr int kThreads = 256;

int segment_width(int group_channels) {
    int seg = 1;
    while (seg < group_channels && seg < 32) seg <<= 1;
    return seg;
}

template <typename T>
cudaError_t launch_forward(const Dcnv3Shape *s, const void *input, const void *offset, const void *mask,
                           void *output, cudaStream_t stream) {
    const long long total = 1LL * s->batch * s->height_out * s->width_out * s->group * s->group_channels;
    if (total == 0) return cudaSuccess;
    const int blocks = static_cast<int>((total + kThreads - 1) / kThreads);
    dcnv3_forward_kernel<T><<<blocks, kThreads, 0, stream>>>(*s, static_cast<const T *>(input),
                                                              static_cast<const T *>(offset),
                                                              static_cast<const T *>(mask), static_cast<T *>(output),
                                                              static_cast<int>(total));
    return cudaGetLastError();
}

template <typename T>
cudaError_t launch_backward(const Dcnv3Shape *s, const void *grad_output, const void *input, const void *offset,
                            const void *mask, float *grad_input, void *grad_offset, void *grad_mask,
                            cudaStream_t stream) {
    const long long locations = 1LL * s->batch * s->height_out * s->width_out * s->group;
    if (locations == 0) return cudaSuccess;
    const int seg = segment_width(s->group_channels);
    const int per_block = kThreads / seg;
    const int blocks = static_cast<int>((locations + per_block - 1) / per_block);
    dcnv3_backward_kernel<T><<<blocks, kThreads, 0, stream>>>(
        *s, static_cast<const T *>(grad_output), static_cast<const T *>(input), static_cast<const T *>(offset),
        static_cast<const T *>(mask), grad_input, static_cast<T *>(grad_offset), static_cast<T *>(grad_mask),
        static_cast<int>(locations), seg);
    return cudaGetLastError();
}

}  // namespace

#define M3I_DCNV3_DEFINE(SUFFIX, TYPE)                                                                      \
    extern "C" cudaError_t m3i_dcnv3_forward_##SUFFIX(const Dcnv3Shape *shape, const void *input,            \
                                                      const void *offset, const void *mask, void *output,      \
                                                      cudaStream_t stream) {                                   \
        return launch_forward<TYPE>(shape, input, offset, mask, output, stream);                               \
    }                                                                                                          \
    extern "C" cudaError_t m3i_dcnv3_backward_##SUFFIX(                                                       \
        const Dcnv3Shape *shape, const void *grad_output, const void *input, const void *offset,               \
        const void *mask, float *grad_input_acc, void *grad_offset, void *grad_mask, cudaStream_t stream) {    \
        return launch_backward<TYPE>(shape, grad_output, input, offset, mask, grad_input_acc, grad_offset,     \
                                     grad_mask, stream);                                                       \
    }

M3I_DCNV3_DEFINE(float, float)
M3I_DCNV3_DEFINE(half, __half)
M3I_DCNV3_DEFINE(bfloat16, __nv_bfloat16)
