build-fuzz/fuzz_policy: tests/fuzz/fuzz_policy.c core/err.h core/log.h \
  core/policy.h core/store.h core/token.h core/url.h

core/err.h:

core/log.h:

core/policy.h:

core/store.h:

core/token.h:

core/url.h:
