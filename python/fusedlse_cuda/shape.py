"""The Python mirror of csrc/fusedlse.cpp's settings parsing and ForwardShape: nn.ConvTranspose2d's settings as
the op's schema takes them, its output size and the mean's scale. tests/test_reliability.py checks each rule against
the C++ one (torch.ops.fusedlse.check_forward) and against nn.ConvTranspose2d."""
import operator
from typing import List, Sequence, Tuple, Union

IntOrPair = Union[int, Sequence[int]]

_INT64_MAX = 2**63 - 1


def _index(name: str, value, expected: str = "an int or a pair of ints") -> int:
    """value as a Python int the way nn.ConvTranspose2d takes it (operator.index: int, bool, numpy integers, integer
    0-d tensors); floats are refused rather than truncated. `expected`: what the error says the setting takes."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})") from None
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise ValueError(f"{name} must fit in 64 bits, got {number}")
    return number


def pair(name: str, value: IntOrPair) -> List[int]:
    """An int or a pair of ints as [height, width]."""
    if hasattr(value, "__index__"):  # asked first: torch.compile traces this for the tuples it sees, not an exception
        try:
            number = operator.index(value)
        except TypeError:  # a tensor of several elements: perhaps a pair
            number = None
        if number is not None:
            number = _index(name, number)
            return [number, number]
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        items = list(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r} "
                        f"({type(value).__name__})") from None
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
    return [_index(name, item) for item in items]


def conv_settings(stride: IntOrPair = 1, padding: IntOrPair = 0, output_padding: IntOrPair = 0,
                  dilation: IntOrPair = 1, groups: int = 1) -> dict:
    """nn.ConvTranspose2d's settings as the op's schema takes them (each int or pair becomes [height, width])."""
    return dict(stride=pair("stride", stride), padding=pair("padding", padding),
                output_padding=pair("output_padding", output_padding), dilation=pair("dilation", dilation),
                groups=_index("groups", groups, "an int"))


def uncropped_size(height, width, kernel_h, kernel_w, stride, output_padding, dilation):
    """(H, W) of nn.ConvTranspose2d's output before padding crops it."""
    return ((height - 1) * stride[0] + dilation[0] * (kernel_h - 1) + output_padding[0] + 1,
            (width - 1) * stride[1] + dilation[1] * (kernel_w - 1) + output_padding[1] + 1)


def output_size(height: int, width: int, kernel_h: int, kernel_w: int, stride: Sequence[int],
                output_padding: Sequence[int], dilation: Sequence[int],
                padding: Sequence[int] = (0, 0)) -> Tuple[int, int]:
    """(H_out, W_out) of nn.ConvTranspose2d; ValueError where it or its area would overflow int64, or where padding
    crops the whole output, as in the C++ check."""
    sizes = uncropped_size(height, width, kernel_h, kernel_w, stride, output_padding, dilation)
    for name, extent in zip(("H_out", "W_out"), sizes):
        if extent > _INT64_MAX:
            raise ValueError(f"the output's {name} = {extent} overflows int64; use a smaller stride or dilation")
    sizes = tuple(extent - 2 * pad for extent, pad in zip(sizes, padding))
    for name, extent in zip(("H_out", "W_out"), sizes):
        if extent < 1:
            raise ValueError(f"padding {list(padding)} crops the whole output: {name} = {extent} must be at least 1")
    if sizes[0] * sizes[1] > _INT64_MAX:
        raise ValueError(f"the output's H_out * W_out = {sizes[0]} * {sizes[1]} overflows int64; use a smaller "
                         f"stride or dilation")
    return sizes


def mean_scale(x_shape, weight_shape, stride, output_padding, dilation, padding=(0, 0)) -> float:
    """1 / (H_out * W_out): turns the summed products of x and the weight into the mean of the transposed
    convolution. For shapes the op has accepted (its C++ check refuses the others); symbolic shapes pass through
    unguarded."""
    out_h, out_w = uncropped_size(x_shape[2], x_shape[3], weight_shape[2], weight_shape[3], stride, output_padding,
                                  dilation)
    return 1.0 / ((out_h - 2 * padding[0]) * (out_w - 2 * padding[1]))


def bias_is_per_channel(bias_shape: Sequence[int], c_out: int) -> bool:
    """Whether the model's broadcast of a bias of this shape against mean(convT(x)) [B, C_out, 1, 1] gives one value
    per output channel (the bias shapes the fused op takes; csrc/fusedlse.cpp check_bias_shape)."""
    dims = len(bias_shape)
    if dims > 4:
        return False
    return all(size == 1 or (4 - dims + d == 1 and size == c_out) for d, size in enumerate(bias_shape))
