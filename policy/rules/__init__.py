"""The deterministic rules, one module per group of points. Each module exposes some of:

- ``check(inv, ctx)``: hits for one simple command (an ``Invocation``);
- ``check_script(info, ctx)``: hits that need the whole parsed script (loops, pipelines);
and the engine runs them all.
"""
