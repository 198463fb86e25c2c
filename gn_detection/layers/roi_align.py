"""RoIAlign as a sparse matrix product, for training on the CPU.

torchvision's CPU RoIAlign backward walks the RoIs one by one on a single thread, recomputing
the bilinear weights for every channel and scattering into an NCHW gradient: with 512 RoIs per
image it took more time than the whole box head's convolutions. Here the sampling is one sparse
matrix M with a row per output bin and a column per input pixel, holding each bin's bilinear
weights averaged over its samples. Then

    pooled = M @ features        backward:  grad_features = M^T @ grad_pooled

with the features laid out (pixels, channels); both products are multi-threaded sparse-dense
matrix products and autograd derives the second from the first. The weights are torchvision's
formula, so the results agree to float rounding (tested against it).
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

    The sparse product is used where it pays: CPU tensors that need a gradient. Inference and
    CUDA (whose kernel is parallel) use torchvision's op.
    """
    if input.device.type != "cpu" or not (torch.is_grad_enabled() and input.requires_grad) or len(rois) == 0:
        return torchvision.ops.roi_align(
            input, rois.to(input.dtype), output_size, spatial_scale, sampling_ratio, aligned
        )
    batch, channels, height, width = input.shape
    dtype = torch.promote_types(input.dtype, torch.float32)  # bf16/fp16 pool in fp32, as torchvision's op
    matrix = sampling_matrix(rois.to(dtype), (batch, height, width), output_size, spatial_scale, sampling_ratio, aligned)
    # One copy: cast and lay out as (pixels, channels) together.
    pixels = input.to(dtype, memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(-1, channels)
    with torch.autocast("cpu", enabled=False):
        pooled = torch.sparse.mm(matrix, pixels)
    return pooled.view(-1, output_size, output_size, channels).permute(0, 3, 1, 2)


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
    positions, the out-of-range test, the average): each axis is worked out on its own and
    each bin's entries are the outer product of its y and x entries.
    """
    batch, height, width = feature_shape
    rois = rois.detach()
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_width, roi_height = x2 - x1, y2 - y1
    if not aligned:  # the original RoIAlign forces malformed RoIs to 1x1
        roi_width, roi_height = roi_width.clamp(min=1.0), roi_height.clamp(min=1.0)
    y_index, y_weight = _axis_samples(y1, roi_height / output_size, height, output_size, sampling_ratio)
    x_index, x_weight = _axis_samples(x1, roi_width / output_size, width, output_size, sampling_ratio)

    num_rois, p, k = rois.shape[0], output_size, y_index.shape[-1]
    # (roi, bin row, bin column, y entry, x entry)
    pixel = (
        rois[:, 0].long().view(-1, 1, 1, 1, 1) * (height * width)
        + y_index.view(num_rois, p, 1, k, 1) * width
        + x_index.view(num_rois, 1, p, 1, -1)
    )
    weight = y_weight.view(num_rois, p, 1, k, 1) * x_weight.view(num_rois, 1, p, 1, -1)
    row = torch.arange(num_rois * p * p).view(num_rois, p, p, 1, 1).expand_as(pixel)
    keep = weight != 0
    matrix = torch.sparse_coo_tensor(
        torch.stack([row[keep], pixel[keep]]),
        weight[keep],
        (num_rois * p * p, batch * height * width),
        check_invariants=False,  # built to satisfy them; checking costs a pass over the entries
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        # Neighbouring samples share pixels: coalescing sums them, so each row lists a pixel once.
        return matrix.coalesce().to_sparse_csr()


def _axis_samples(start, bin_size, size: int, output_size: int, sampling_ratio: int):
    """Pixel indices and weights along one axis: (R, P, 2 * G) each, G = the largest sample grid.

    A bin's samples sit at the centres of a G-cell grid over it (G = ``sampling_ratio``, or
    ceil(bin size) per RoI when 0); each one reads its two neighbouring pixels with linear
    weights, and the bin averages them. Samples beyond a pixel outside the map read zero; those just outside
    read the border pixel, as in torchvision's kernel.
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
    index = torch.cat([low, high], dim=-1).long()
    weight = torch.cat([(1 - fraction) * share, fraction * share], dim=-1)
    return index, weight
