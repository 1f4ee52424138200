#!/usr/bin/env python3
"""Renders every case of expected.json with Python jinja2 set up exactly as transformers'
apply_chat_template does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
its tojson/raise_exception/strftime_now), and reports each case where the output or the error differs
from what @huggingface/jinja wrote. Needs only `jinja2` (pip install jinja2); exits 1 on a difference.

    python3 tests/Grpo.Native.Tests/Tokenization/Templates/data/check-python-jinja2.py
"""
import json
import pathlib
import sys
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(Extension):
    """transformers' AssistantTracker renders {% generation %} bodies unchanged (it only records spans)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    here = pathlib.Path(__file__).parent
    cases = json.loads((here / "expected.json").read_text(encoding="utf-8"))["cases"]
    env = environment()
    compiled = {}
    differences = 0
    for case in cases:
        name = case["template"]
        if name not in compiled:
            compiled[name] = env.from_string((here / name).read_text(encoding="utf-8"))
        try:
            got, error = compiled[name].render(**case["variables"]), None
        except jinja2.exceptions.TemplateError as e:
            got, error = None, str(e)
        if got != case.get("expected") or error != case.get("error"):
            differences += 1
            print(f"DIFF {name} / {case['case']}")
            print(f"  @huggingface/jinja: {case.get('expected', case.get('error'))!r}")
            print(f"  python jinja2     : {got if error is None else error!r}")
    print(f"{len(cases) - differences} agree, {differences} differ (jinja2 {jinja2.__version__})")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
