build-fuzz/obj/metrics.o: core/metrics.c core/metrics.h core/policy.h \
  core/store.h core/token.h core/url.h

core/metrics.h:

core/policy.h:

core/store.h:

core/token.h:

core/url.h:
