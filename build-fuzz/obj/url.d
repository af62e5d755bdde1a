build-fuzz/obj/url.o: core/url.c core/url.h

core/url.h:
