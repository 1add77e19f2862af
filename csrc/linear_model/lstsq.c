/* Least-squares block kernels (math in lstsq.h): one body per kernel in lstsq_impl.h. */
#include "lib/fastseq.h"
#include "linear_model/lstsq.h"

/* Rows handled per tile of the packing transpose: a tile reads LSQ_TILE rows of x (each row's
 * cache lines are reused across consecutive j) and writes LSQ_TILE contiguous doubles per output
 * column. */
#define LSQ_TILE 16

#define T double
#define SFX(name) name##_d
#include "linear_model/lstsq_impl.h"
#define T float
#define SFX(name) name##_f
#include "linear_model/lstsq_impl.h"
