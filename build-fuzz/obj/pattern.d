build-fuzz/obj/pattern.o: core/pattern.c core/pattern.h

core/pattern.h:
