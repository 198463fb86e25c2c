# `make run` and `make test` do all set-up themselves: a venv in .venv with the pinned torch.
VENV ?= .venv
PYTHON ?= python3
INSTALLED := $(VENV)/.installed

.PHONY: venv run test clean

$(INSTALLED): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

venv: $(INSTALLED)

DEFAULT_CONFIG := configs/shapes/scratch_mask_rcnn_R_18_FPN_gn.yaml
DEFAULT_OUTPUT := output/shapes_gn_scratch

# --resume: a killed run continues where it stopped; a finished one is only evaluated again.
run: $(INSTALLED)
	$(VENV)/bin/gn-detect train --config-file $(DEFAULT_CONFIG) --resume
	$(VENV)/bin/gn-detect visualize --config-file $(DEFAULT_CONFIG) --weights $(DEFAULT_OUTPUT)/model_final.pth \
		--dataset shapes_val --num-images 4 --output $(DEFAULT_OUTPUT)/visualize

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) *.egg-info
