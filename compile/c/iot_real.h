/* Internal: the arithmetic of iot_real (iotengine.h) in the library's sources. math.h's functions of its type and
 * literals of its type, so that a float build has no implicit conversion to or from double (it builds clean
 * under -Wdouble-promotion -Wfloat-conversion), and a double build is the Numba kernel's arithmetic. */
#ifndef IOT_REAL_H
#define IOT_REAL_H
#include <math.h>

#include "iotengine.h"

#if IOT_REAL_IS_FLOAT
#define IOT_LIT(x) x##f
#define iot_sqrt sqrtf
#define iot_log1p log1pf
#define iot_fabs fabsf
#define iot_exp expf
#else
#define IOT_LIT(x) x
#define iot_sqrt sqrt
#define iot_log1p log1p
#define iot_fabs fabs
#define iot_exp exp
#endif
#define IOT_NAN ((iot_real)NAN) /* math.h's NAN is a float */

#endif
