"""RoIAlign whose backward is a sparse matrix product, for training on the CPU.

torchvision's CPU RoIAlign backward walks the RoIs one by one on a single thread, recomputing
the bilinear weights for every channel and scattering into an NCHW gradient: with 512 RoIs per
image it took more time than the whole box head's convolutions. Here the sampling is one sparse
matrix M with a row per output bin and a column per input pixel, holding each bin's bilinear
weights averaged over its samples, and

    grad_features = M^T @ grad_pooled

with the features laid out (pixels, channels): a multi-threaded sparse-dense product. The
forward stays torchvision's op, so the pooled values are bit for bit those of torchvision and
detectron2: after the box head's ReLUs, a difference of float rounding in them can switch units
on or off and move the gradients by far more than rounding (tests/interop). The weights are
torchvision's formula, so the two backward passes agree to float rounding (tested against it).
"""
import warnings
from typing import Tuple

import torch
import torchvision

__all__ = ["roi_align", "sampling_matrix"]


def roi_align(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """torchvision.ops.roi_align's contract: ``rois`` is (R, 5) of (batch index, x1, y1, x2, y2).

    The sparse backward is used where it pays: CPU tensors that need a gradient. Inference and
    CUDA (whose kernel is parallel) use torchvision's op throughout.
    """
    if input.device.type != "cpu" or not (torch.is_grad_enabled() and input.requires_grad) or len(rois) == 0:
        return torchvision.ops.roi_align(
            input, rois.to(input.dtype), output_size, spatial_scale, sampling_ratio, aligned
        )
    return _RoIAlignSparseBackward.apply(input, rois, output_size, spatial_scale, sampling_ratio, aligned)


class _RoIAlignSparseBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned):
        batch, channels, height, width = input.shape
        dtype = torch.promote_types(input.dtype, torch.float32)  # bf16/fp16 pool in fp32, as torchvision's op
        ctx.input_dtype, ctx.input_shape = input.dtype, input.shape
        input, rois = input.to(dtype), rois.to(dtype)
        ctx.matrix = sampling_matrix(rois, (batch, height, width), output_size, spatial_scale, sampling_ratio, aligned)
        with torch.autocast("cpu", enabled=False):
            return torchvision.ops.roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        batch, channels, height, width = ctx.input_shape
        bins = grad.permute(0, 2, 3, 1).reshape(-1, channels)  # rows in the matrix's (RoI, bin) order
        with torch.autocast("cpu", enabled=False):
            pixels = torch.sparse.mm(ctx.matrix.t(), bins.to(ctx.matrix.dtype))
        grad_input = pixels.view(batch, height, width, channels).permute(0, 3, 1, 2).to(ctx.input_dtype)
        return grad_input, None, None, None, None, None


def sampling_matrix(
    rois: torch.Tensor,
    feature_shape: Tuple[int, int, int],
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """Sparse CSR (R * P * P, B * H * W) matrix of RoIAlign's weights, P = ``output_size``.

    Bilinear interpolation is separable, and so is everything else in RoIAlign (sample
    positions, the out-of-range test, the average): each axis is worked out on its own, as one
    weight per pixel of a window, and each bin's entries are the outer product of its y and x
    windows. A row's entries then come out once each and in column order, as CSR wants them.
    """
    batch, height, width = feature_shape
    rois = rois.detach()
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_width, roi_height = x2 - x1, y2 - y1
    if not aligned:  # the original RoIAlign forces malformed RoIs to 1x1
        roi_width, roi_height = roi_width.clamp(min=1.0), roi_height.clamp(min=1.0)
    y_first, y_weight = _axis_weights(y1, roi_height / output_size, height, output_size, sampling_ratio)
    x_first, x_weight = _axis_weights(x1, roi_width / output_size, width, output_size, sampling_ratio)

    num_rois, p, ly, lx = rois.shape[0], output_size, y_weight.shape[-1], x_weight.shape[-1]
    # (roi, bin row, bin column, y in the window, x in the window)
    weight = y_weight.view(num_rois, p, 1, ly, 1) * x_weight.view(num_rois, 1, p, 1, lx)
    y = y_first.view(num_rois, p, 1, 1, 1) + torch.arange(ly).view(ly, 1)
    x = x_first.view(num_rois, 1, p, 1, 1) + torch.arange(lx)
    pixel = rois[:, 0].long().view(-1, 1, 1, 1, 1) * (height * width) + y * width + x
    keep = weight != 0
    row_lengths = keep.flatten(start_dim=3).sum(dim=-1).flatten()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.cat([row_lengths.new_zeros(1), row_lengths.cumsum(0)]),
            pixel[keep],
            weight[keep],
            (num_rois * p * p, batch * height * width),
            check_invariants=False,  # built to satisfy them; checking costs a pass over the entries
        )


def _axis_weights(start, bin_size, size: int, output_size: int, sampling_ratio: int):
    """Each bin's weight on each pixel along one axis: (R, P) first pixels, and (R, P, L) weights
    of pixels first .. first + L - 1 (L fits the widest bin; zero past a bin's own pixels).

    A bin's samples sit at the centres of a G-cell grid over it (G = ``sampling_ratio``, or
    ceil(bin size) per RoI when 0); each one reads its two neighbouring pixels with linear
    weights, and the bin averages them. Samples beyond a pixel outside the map read zero; those
    just outside read the border pixel, as in torchvision's kernel.
    """
    if sampling_ratio > 0:
        grid = torch.full_like(bin_size, sampling_ratio)
    else:
        grid = torch.ceil(bin_size)  # 0 for an empty RoI, which then reads nothing
    grid = grid.view(-1, 1, 1)
    cell_count = grid.clamp(min=1)
    bins = torch.arange(output_size, dtype=start.dtype).view(1, -1, 1)
    cells = torch.arange(max(int(grid.max()), 1), dtype=start.dtype).view(1, 1, -1)
    step = bin_size.view(-1, 1, 1)
    position = start.view(-1, 1, 1) + bins * step + (cells + 0.5) * step / cell_count
    valid = (cells < grid) & (position >= -1.0) & (position <= size)
    position = position.clamp(min=0)
    low = position.floor()
    at_border = low >= size - 1
    low = torch.where(at_border, float(size - 1), low)
    high = torch.where(at_border, low, low + 1)
    fraction = torch.where(at_border, 0.0, position - low)
    share = valid / cell_count
    low, high = low.long(), high.long()
    first = torch.where(valid, low, size).amin(dim=-1, keepdim=True).clamp(max=size - 1)
    # A sample that reads nothing is put at the window's start, so it does not widen the window.
    low, high = torch.where(valid, low - first, 0), torch.where(valid, high - first, 0)
    span = int(high.max()) + 1 if high.numel() else 1
    weight = torch.zeros(low.shape[:2] + (span,), dtype=start.dtype)
    weight.scatter_add_(-1, low, (1 - fraction) * share).scatter_add_(-1, high, fraction * share)
    return first[..., 0], weight
