build-fuzz/fuzz_log: tests/fuzz/fuzz_log.c core/log.h

core/log.h:
