# SPDX-License-Identifier: GPL-2.0-only
# Build rules shared by the lab's static guest programs (lab/bench, lab/agent).
# The including Makefile sets PROG (the binary's name) and SRCS (its own .c
# files) first; lab/common/netutil.c is linked into every program.
#   make -C lab/<dir> [OUT=dir]   ->  $(OUT)/$(PROG), objects in $(OUT)/obj-$(PROG)
COMMON := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
OUT ?= ../../build/bench
CFLAGS ?= -O2
override CFLAGS += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP
override LDFLAGS += -static

OBJDIR := $(OUT)/obj-$(PROG)
OBJS := $(SRCS:%.c=$(OBJDIR)/%.o) $(OBJDIR)/netutil.o

all: $(OUT)/$(PROG)

$(OUT)/$(PROG): $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(OBJDIR)/%.o: %.c | $(OBJDIR)
	$(CC) $(CFLAGS) -c -o $@ $<

$(OBJDIR)/netutil.o: $(COMMON)/netutil.c | $(OBJDIR)
	$(CC) $(CFLAGS) -c -o $@ $<

$(OBJDIR):
	mkdir -p $@

clean:
	rm -rf $(OBJDIR) $(OUT)/$(PROG)

-include $(OBJS:.o=.d)

.PHONY: all clean
