build-fuzz/obj/policy_source.o: core/policy_source.c core/policy_source.h \
  core/err.h core/token.h

core/policy_source.h:

core/err.h:

core/token.h:
