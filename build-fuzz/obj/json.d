build-fuzz/obj/json.o: core/json.c core/json.h core/err.h

core/json.h:

core/err.h:
