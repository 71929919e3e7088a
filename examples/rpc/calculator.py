"""A calculator service: unary calls, a server stream, a declared error, deadlines.

Run it as ``python examples/rpc/calculator.py``: it serves the calculator on a free port
and calls it through a typed stub, printing what each call returned. docs/rpc.md quotes
this file; tests/rpc/test_rpc_example.py runs it.
"""

# ruff: noqa: T201  (a demo program: printing is its output)
# Interface methods have no bodies, which mypy flags outside Protocols:
# mypy: disable-error-code="empty-body"
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import tejido.rpc as rpc


# --- declare: one interface, shared by server and client -------------------------------
class DivisionByZero(rpc.ServiceError):
    """Declared below, so callers get this class (not a RemoteError)."""


@rpc.service
class Calculator:
    errors = (DivisionByZero,)

    async def add(self, a: int, b: int) -> int: ...

    async def divide(self, a: float, b: float) -> float: ...

    @rpc.method(idempotent=True)  # safe to retry after a lost connection
    async def slow_square(self, x: int, seconds: float) -> int: ...

    def count(self, upto: int) -> AsyncIterator[int]: ...  # server streaming


# --- implement: subclass the interface ---------------------------------------------------
class CalculatorImpl(Calculator):
    async def add(self, a: int, b: int) -> int:
        return a + b

    async def divide(self, a: float, b: float) -> float:
        if b == 0:
            raise DivisionByZero(f"cannot divide {a} by zero")
        return a / b

    async def slow_square(self, x: int, seconds: float) -> int:
        await asyncio.sleep(seconds)
        return x * x

    async def count(self, upto: int) -> AsyncIterator[int]:
        for i in range(upto):
            yield i


# --- serve and call ----------------------------------------------------------------------
async def main() -> None:
    server = await rpc.serve("127.0.0.1:0", {Calculator: CalculatorImpl()})
    calc = await rpc.connect(Calculator, server.address, timeout=5.0)

    print("add(1, 2) =", await calc.add(1, 2))
    print("count(5) =", [i async for i in calc.count(5)])
    try:
        await calc.divide(1, 0)
    except DivisionByZero as exc:
        print("divide(1, 0) raised DivisionByZero:", exc)
    with rpc.call_options(timeout=0.05):
        try:
            await calc.slow_square(3, seconds=1.0)
        except rpc.DeadlineExceeded:
            print("slow_square(3) missed its 0.05 s deadline")
    print("slow_square(4) =", await calc.slow_square(4, seconds=0.0))

    await rpc.close(calc)
    await server.close()


if __name__ == "__main__":
    rpc.run(main())
