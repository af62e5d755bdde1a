build-fuzz/fuzz_url: tests/fuzz/fuzz_url.c core/url.h

core/url.h:
