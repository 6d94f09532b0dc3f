"""Pure data contracts and pure logic shared by workflows, activities and the CLI.

Nothing in this package does I/O at import time or in the code workflows call; workflows import
it inside ``workflow.unsafe.imports_passed_through()``.
"""
