build-fuzz/obj/token.o: core/token.c core/token.h

core/token.h:
