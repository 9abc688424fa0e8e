#ifndef PC_ARGON2_SHIM_H
#define PC_ARGON2_SHIM_H
#include <argon2.h>
#endif
