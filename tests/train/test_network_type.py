"""A typo in `network_g.type` gets a "did you mean", as unknown option keys do."""

from __future__ import annotations

import pytest

from restoregen.config import OptionError, check_network
from restoregen.train.networks import network_class


@pytest.mark.parametrize(("typo", "meant"), [("HTA", "HAT"), ("DRTC", "DRCT"), ("RRDBNett", "RRDBNet")])
def test_network_type_typo_suggests_the_name(typo: str, meant: str) -> None:
    opt = {"network_g": {"type": typo}, "_file": "train.yml", "_lines": {("network_g", "type"): 7}}
    with pytest.raises(OptionError, match=f"unknown network '{typo}'; did you mean '{meant}'"):
        check_network(opt, "network_g", resolve=network_class)


def test_registry_suggests_too() -> None:
    from restoregen.archs import get_arch

    with pytest.raises(KeyError, match="unknown architecture 'DLGSANett'; did you mean 'DLGSANet'"):
        get_arch("DLGSANett")
