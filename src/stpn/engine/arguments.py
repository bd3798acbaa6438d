"""Command-line arguments every command shares: number types that refuse what makes no sense,
the support flags (K, stride, refresh), the help format. Imports nothing heavy (``stpn --help``
must not load torch)."""
from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter that ends each option's help with its default, when it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (default in (None, False, argparse.SUPPRESS) or "default" in text or action.option_strings == []
                or isinstance(action, argparse._HelpAction)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})" if text else f"default: {shown}"


def _number(kind, minimum, what):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value < minimum:  # NaN or too small
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, "an integer >= 1")
non_negative_int = _number(int, 0, "an integer >= 0")


def fraction(text: str) -> float:
    value = _number(float, 0.0, "a number in [0, 1]")(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def below_one(text: str) -> float:
    """A number in [0, 1) (a threshold a score in [0, 1] can exceed)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1:  # also NaN
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def frame_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H), both positive integers."""
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise argparse.ArgumentTypeError(f"expected WxH in pixels, both >= 1 (e.g. 1000x600), got {text!r}")
    return int(w), int(h)


def add_support_arguments(parser: argparse.ArgumentParser) -> None:
    """``--num-support``, ``--stride``, ``--refresh-every``: one definition for every command.
    None means "not given": the config's (or the export's) value is used; 0 is refused."""
    parser.add_argument("--num-support", type=positive_int, metavar="K",
                        help="support frames per prediction (default: the config's data.test_num_support)")
    parser.add_argument("--stride", type=positive_int, metavar="S",
                        help="frames between supports (default: the config's data.test_stride)")
    parser.add_argument("--refresh-every", type=positive_int, metavar="R",
                        help="causal: recompute the prompts every R frames (default: the config's "
                             "data.test_refresh_every)")


def support_settings(args, defaults) -> tuple[int, int, int]:
    """(K, S, R): the flags where given, else ``defaults``; an explicit value is never replaced."""
    given = (args.num_support, args.stride, args.refresh_every)
    return tuple(int(d) if g is None else g for g, d in zip(given, defaults))
