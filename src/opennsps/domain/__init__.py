"""Pure types and rules of OpenNSPS: no I/O, imports nothing else of the project."""
