"""The disk selector's CEL parser loads from lark's grammar cache and parses exactly as cel-python's own."""

from __future__ import annotations

import celpy
import celpy.celparser
import pytest

from runbook_lib import disk_selector

EXPRESSIONS = [
    "system_disk",
    "disk.size > 100u * GiB && !disk.rotational",
    'disk.transport == "nvme" || glob("/dev/sd*", disk.dev_path)',
    "!system_disk && disk.size >= 200u * GB && true",
]


@pytest.fixture
def own_parser():
    """cel-python's parser as it builds it itself, restored afterwards."""
    saved = celpy.celparser.CELParser.CEL_PARSER
    celpy.celparser.CELParser.CEL_PARSER = None
    try:
        celpy.celparser.CELParser()
        yield celpy.celparser.CELParser.CEL_PARSER
    finally:
        celpy.celparser.CELParser.CEL_PARSER = saved


def test_the_cached_parser_parses_as_cel_python_builds_it(own_parser) -> None:
    theirs = [celpy.Environment().compile(e) for e in EXPRESSIONS]
    celpy.celparser.CELParser.CEL_PARSER = None
    disk_selector._load_cel_parser()
    ours = celpy.celparser.CELParser.CEL_PARSER
    assert ours is not None and ours is not own_parser
    assert [celpy.Environment().compile(e) for e in EXPRESSIONS] == theirs
    assert disk_selector.check_disk_selector("disk.size > 100 * GB") == disk_selector.check_disk_selector(
        "disk.size > 100 * GB") != []  # still cel-go's uint rule, through the cached parser


def test_a_parser_already_built_is_kept(own_parser) -> None:
    disk_selector._load_cel_parser()
    assert celpy.celparser.CELParser.CEL_PARSER is own_parser
