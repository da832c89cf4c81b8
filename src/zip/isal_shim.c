/* A narrow C face over ISA-L's igzip, so Rust never mirrors the layout of
 * struct isal_zstream (which depends on how the library was configured).
 * Built and linked by build.rs only when the library is found. */
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

struct zipgate_isal {
	struct isal_zstream stream;
	uint8_t level_buf[ISAL_DEF_LVL3_DEFAULT];
};

/* Level buffer sizes follow the header's defaults for each level. */
static uint32_t level_buf_size(uint32_t level)
{
	switch (level) {
	case 1: return ISAL_DEF_LVL1_DEFAULT;
	case 2: return ISAL_DEF_LVL2_DEFAULT;
	default: return ISAL_DEF_LVL3_DEFAULT;
	}
}

struct zipgate_isal *zipgate_isal_new(void)
{
	return malloc(sizeof(struct zipgate_isal));
}

void zipgate_isal_free(struct zipgate_isal *z)
{
	free(z);
}

uint32_t zipgate_isal_max_level(void)
{
	return ISAL_DEF_MAX_LEVEL;
}

/* Starts a new raw deflate stream; 0 or an ISA-L error code. */
int zipgate_isal_begin(struct zipgate_isal *z, uint32_t level, const uint8_t *dict,
		       uint32_t dict_len, int last)
{
	struct isal_zstream *s = &z->stream;
	isal_deflate_init(s);
	s->level = level;
	s->level_buf = z->level_buf;
	s->level_buf_size = level_buf_size(level);
	s->end_of_stream = last ? 1 : 0;
	s->flush = last ? NO_FLUSH : SYNC_FLUSH;
	if (dict_len > 0)
		return isal_deflate_set_dict(s, (uint8_t *)dict, dict_len);
	return COMP_OK;
}

/* Compresses what it can of the input into the output. Sets *consumed and
 * *produced; *finished once the stream ended (last) or the sync flush is
 * out. Returns 0 or an ISA-L error code. */
int zipgate_isal_run(struct zipgate_isal *z, const uint8_t *in, uint32_t in_len, uint8_t *out,
		     uint32_t out_cap, uint32_t *consumed, uint32_t *produced, int *finished)
{
	struct isal_zstream *s = &z->stream;
	s->next_in = (uint8_t *)in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_cap;
	int rc = isal_deflate(s);
	*consumed = in_len - s->avail_in;
	*produced = out_cap - s->avail_out;
	if (s->end_of_stream)
		*finished = s->internal_state.state == ZSTATE_END;
	else
		/* The header's rule: all input is flushed once the output
		 * buffer was left with room, or the next header is due. */
		*finished = s->avail_in == 0
			&& (s->avail_out > 0 || s->internal_state.state == ZSTATE_NEW_HDR);
	return rc;
}
