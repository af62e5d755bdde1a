/* version.h - the release; the build may set HF_VERSION instead. */
#ifndef HF_VERSION_H
#define HF_VERSION_H

#ifndef HF_VERSION
#define HF_VERSION "0.1.0"
#endif

#endif
