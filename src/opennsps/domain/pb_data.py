"""The parts an account event's `pb_data` is made of. A handler may ask for some of them
only (its `pb_data_parts`, or its connector's own list): the PortaBilling calls for the
others are not made."""

from __future__ import annotations

from typing import Literal, get_args

PbDataPart = Literal[
    "account_info",
    "sim_info",
    "full_vd_counter_info",
    "product_info",
    "access_policy_info",
    "prev_sim_info",
]
PB_DATA_PARTS: frozenset[str] = frozenset(get_args(PbDataPart))
