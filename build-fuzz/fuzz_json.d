build-fuzz/fuzz_json: tests/fuzz/fuzz_json.c core/err.h core/json.h

core/err.h:

core/json.h:
