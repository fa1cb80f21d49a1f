"""The model registry: every architecture builds, runs forward/backward at 64 px, adapts channels, freezes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ich_ray.models.registry import (
    ArchSpec,
    adapt_input_conv,
    create_model,
    get_spec,
    list_models,
    register_model,
)

ARCHS = ("alexnet", "densenet121", "resnet101", "resnet18", "resnet50")


def test_registry_lists_the_five_paper_architectures():
    assert list_models() == sorted(ARCHS)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown architecture 'vgg16'.*alexnet, densenet121, resnet101"):
        get_spec("vgg16")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model(ArchSpec("resnet18", lambda **_: nn.Identity(), head="fc", stem="conv1", min_size=32,
                                cam_layer="layer4"))


@pytest.mark.parametrize("name", ARCHS)
def test_forward_backward_every_model_at_64px(name):
    torch.manual_seed(0)
    model = create_model(name, num_outputs=6, in_channels=3)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 6)
    out.sum().backward()
    assert torch.isfinite(out).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "alexnet"])
@pytest.mark.parametrize("channels", [1, 9])
def test_any_number_of_input_channels(name, channels):
    model = create_model(name, num_outputs=1, in_channels=channels)
    assert model.get_submodule(get_spec(name).stem).in_channels == channels
    assert model(torch.randn(1, channels, 64, 64)).shape == (1, 1)


def test_adapted_conv_keeps_the_response_to_a_grey_image():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, bias=False)
    grey3, grey9 = torch.full((1, 3, 5, 5), 0.7), torch.full((1, 9, 5, 5), 0.7)
    adapted = adapt_input_conv(conv, 9)
    # a uniform image gives the same activations whatever the channel count: mean weights x 3/C x C channels
    torch.testing.assert_close(adapted(grey9), conv(grey3))


@pytest.mark.parametrize("name", ARCHS)
def test_freeze_keeps_head_and_batchnorm_trainable(name):
    spec = get_spec(name)
    model = create_model(name, num_outputs=2)
    spec.set_body_frozen(model, True)
    head = {id(p) for p in spec.head_module(model).parameters()}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            expected = id(p) in head or isinstance(module, nn.BatchNorm2d)
            assert p.requires_grad == expected, (name, type(module).__name__)
    spec.set_body_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())


def test_head_is_replaced_with_the_requested_outputs():
    assert create_model("alexnet", 6).classifier[6].out_features == 6
    assert create_model("densenet121", 1).classifier.out_features == 1
    assert create_model("resnet50", 6).fc.out_features == 6


def test_alexnet_refuses_inputs_below_64px():
    with pytest.raises(ValueError, match="alexnet needs inputs of at least 64 px; got size 32"):
        get_spec("alexnet").check_size(32)
    get_spec("resnet18").check_size(32)


def test_pretrained_without_local_weights_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not found in the torch cache.*no download"):
        create_model("resnet18", 1, pretrained=True)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_model("resnet18", 1, pretrained=True, weights_path=tmp_path / "missing.pth")


def test_pretrained_from_a_local_file_loads_those_weights(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    model = create_model("resnet18", 1, pretrained=True, weights_path=tmp_path / "r18.pth")
    torch.testing.assert_close(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_normalization_follows_the_channel_count():
    spec = get_spec("resnet18")
    assert spec.normalization(3) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    mean, std = spec.normalization(9)
    assert len(mean) == len(std) == 9 and mean[0] == pytest.approx(0.449)


@pytest.mark.parametrize("name", list_models())
def test_every_architecture_gives_an_embedding_and_its_logits_in_one_pass(name):
    from ich_ray.models.features import feature_dim, features_and_logits

    spec = get_spec(name)
    model = create_model(name, 6, in_channels=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        embedding, logits = features_and_logits(spec, model, x)
        direct = model(x)
    assert embedding.shape == (2, feature_dim(spec, model)) and torch.isfinite(embedding).all()
    torch.testing.assert_close(logits, direct)
    torch.testing.assert_close(spec.head_module(model)(embedding), direct)  # the head maps embedding -> logits
