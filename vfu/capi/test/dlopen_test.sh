#!/bin/sh
# Runs dlopen_test.py with the system python3 against the built library.
exec python3 "$1" "$2"
