build-fuzz/obj/log.o: core/log.c core/log.h core/json.h

core/log.h:

core/json.h:
