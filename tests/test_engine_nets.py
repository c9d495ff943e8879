"""Engine networks: shapes, gradients, registry, reference layouts, progressive fade, domain switch."""
import pytest
import torch

from facegan.nets import GENERATORS, build_generator
from facegan.nets.blocks import DomainNorm2d, MultiscaleDiscriminator, set_domain
from facegan.nets.cyclegan import NLayerDiscriminator
from facegan.nets.pix2pixhd import GlobalGenerator, LocalEnhancer
from facegan.nets.progressive import ProgressivePatchDiscriminator, ProgressiveResnetGenerator
from facegan.nets.twingan import TwinGenerator
from facegan.nets.unet import UnetGenerator
from facegan.nets.unit import UNITGenerator

torch.set_num_threads(1)

TINY = {
    "ResnetGenerator": dict(ngf=8, n_blocks=2),
    "ResidualTranslator": dict(ngf=8, n_blocks=2),
    "UnetGenerator": dict(num_downs=5, ngf=8),
    "ProgressiveResnetGenerator": dict(ngf=8, n_blocks=2, n_stages=3),
    "UNITGenerator": dict(ngf=8, n_down=2, n_res=1),
    "GlobalGenerator": dict(ngf=8, n_downsampling=2, n_blocks=2),
    "LocalEnhancer": dict(ngf=8, n_downsample_global=2, n_blocks_global=2, n_blocks_local=1),
    "FaceSwapAutoencoder": dict(size=32, ngf=8, latent=32),
    "TwinGenerator": dict(ngf=8, n_down=3, n_res=1),
}


def test_registry_has_every_engine_generator():
    for name in ["ResnetGenerator", "ResidualTranslator", "UnetGenerator", "ProgressiveResnetGenerator",
                 "UNITGenerator", "GlobalGenerator", "LocalEnhancer", "FaceSwapAutoencoder", "TwinGenerator"]:
        assert GENERATORS[name].__name__ == name
    with pytest.raises(KeyError):
        build_generator("NoSuchGenerator")


@pytest.mark.parametrize("name", sorted(TINY))
def test_generator_forward_backward(name):
    torch.manual_seed(0)
    g = build_generator(name, TINY[name])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x, torch.tensor([0, 1])) if name == "ResidualTranslator" else g(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1
    y.abs().mean().backward()
    grads = [p.grad for p in g.parameters() if p.requires_grad]
    assert any(gr is not None and gr.abs().sum() > 0 for gr in grads)


def test_unet_reference_layout_keys():
    g = UnetGenerator(3, 3, num_downs=7, ngf=8, norm="batch")
    keys = list(g.state_dict())
    # reference pytorch-CycleGAN-and-pix2pix layout: nested model.model.N...
    assert keys[0] == "model.model.0.weight"
    assert any(k.startswith("model.model.1.model.3.model.") for k in keys)
    assert g(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 128, 128)


def test_local_enhancer_loads_trained_global():
    torch.manual_seed(0)
    glob = GlobalGenerator(3, 3, ngf=16, n_downsampling=2, n_blocks=1)
    loc = LocalEnhancer(3, 3, ngf=8, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=1)
    loc.load_global(glob.state_dict())
    for i, layer in enumerate(loc.model):
        for k, v in layer.state_dict().items():
            assert torch.equal(v, glob.model[i].state_dict()[k])


def test_progressive_growth_and_fade():
    torch.manual_seed(0)
    g = ProgressiveResnetGenerator(ngf=8, n_blocks=1, n_stages=3)
    d = ProgressivePatchDiscriminator(ndf=8, n_stages=3)
    for stage, res in [(0, 8), (1, 16), (2, 32)]:
        g.set_stage(stage, 1.0)
        d.set_stage(stage, 1.0)
        y = g(torch.randn(2, 3, res, res))
        assert y.shape == (2, 3, res, res)
        assert d(y).shape[1] == 1
    # alpha = 0 at a new stage: output equals the previous stage's output, upsampled
    x = torch.randn(1, 3, 16, 16)
    g.set_stage(1, 0.0)
    faded = g(x)
    g.set_stage(0, 1.0)
    prev = torch.nn.functional.interpolate(g(torch.nn.functional.avg_pool2d(x, 2)), scale_factor=2)
    assert torch.allclose(faded, prev, atol=1e-6)
    g.set_stage(1, 0.5)
    assert not torch.allclose(g(x), prev, atol=1e-4)
    # stage and alpha travel in the state dict
    g2 = ProgressiveResnetGenerator(ngf=8, n_blocks=1, n_stages=3)
    g2.load_state_dict(g.state_dict())
    assert int(g2.stage) == 1 and float(g2.alpha) == 0.5
    with pytest.raises(ValueError):
        g.set_stage(3)


def test_domain_norm_is_the_switch():
    torch.manual_seed(0)
    n = DomainNorm2d(4, 2)
    with torch.no_grad():
        n.weight[1].fill_(2.0)
        n.bias[1].fill_(0.5)
    x = torch.randn(2, 4, 5, 5)
    set_domain(n, torch.tensor([0, 1]))
    y = n(x)
    base = torch.nn.functional.instance_norm(x)
    assert torch.allclose(y[0], base[0], atol=1e-5)
    assert torch.allclose(y[1], base[1] * 2 + 0.5, atol=1e-5)


def test_twin_generator_embed_and_domains():
    torch.manual_seed(0)
    g = TwinGenerator(**TINY["TwinGenerator"])
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, DomainNorm2d):
                m.weight[1].uniform_(0.5, 1.5)
    x = torch.randn(3, 3, 32, 32)
    e = g.embed(x, 0)
    assert e.shape == (3, g.downs[-1][0].out_channels * 4 * 4)  # 32 px / 2**3
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    # the domain switch changes the translation; per-sample domains match per-domain calls
    assert not torch.allclose(g.translate(x, 0, 0), g.translate(x, 0, 1))
    mixed = g.translate(x, torch.tensor([0, 0, 0]), torch.tensor([1, 0, 1]))
    assert torch.allclose(mixed[0], g.translate(x, 0, 1)[0], atol=1e-5)
    assert torch.allclose(mixed[1], g.translate(x, 0, 0)[1], atol=1e-5)


def test_unit_shares_latent_layers():
    g = UNITGenerator(**TINY["UNITGenerator"])
    x = torch.randn(2, 3, 32, 32)
    za, zb = g.encode(x, 0), g.encode(x, 1)
    assert za.shape == zb.shape
    # both domains' encoders end in the same module; decoders start in the same module
    names = {n.split(".")[0] for n, _ in g.named_parameters()}
    assert {"enc", "enc_shared", "dec_shared", "dec"} == names
    assert g(x).shape == x.shape


def test_multiscale_discriminator_features():
    d = MultiscaleDiscriminator(6, ndf=8, n_layers=2, num_D=2)
    out = d(torch.randn(1, 6, 32, 32), features=True)
    assert len(out) == 2
    assert len(out[0]) == 4  # 3 activations + final map
    assert out[1][-1].shape[-1] < out[0][-1].shape[-1]
    assert isinstance(d.nets[0], NLayerDiscriminator)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_progressive_generator_learns_at_every_stage(stage):
    """Regression: stage 0's rgb head follows the residual core; without a norm there, the tanh
    saturated and the coarsest stage never learned."""
    from facegan.nets.cyclegan import init_weights

    torch.manual_seed(0)
    g = init_weights(ProgressiveResnetGenerator(ngf=8, n_blocks=3, n_stages=3))
    g.set_stage(stage, 1.0)
    r = 8 * 2 ** stage
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4) * 2 - 1, size=(r, r), mode="bilinear")
    opt = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    hist = []
    for _ in range(20):
        loss = (g(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(loss.item())
    assert hist[-1] < 0.25 and hist[-1] < 0.5 * hist[0], hist  # old stage 0: 0.72 -> 0.38
