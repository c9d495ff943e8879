"""pix2pixHD generators (Wang et al. 2018): a global generator and a local enhancer that wraps it.

Layout follows the reference pix2pixHD code (``model.N.*``, ``model1_1``/``model1_2``); the
multi-scale discriminator lives in :mod:`facegan.nets.blocks`.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .cyclegan import ResnetBlock, get_norm_layer


class GlobalGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_downsampling=3, n_blocks=9, norm="instance"):
        super().__init__()
        norm_layer = get_norm_layer(norm)
        act = nn.ReLU(True)
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm_layer(ngf), act]
        for i in range(n_downsampling):
            m = 2 ** i
            model += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1), norm_layer(ngf * m * 2), act]
        m = 2 ** n_downsampling
        model += [ResnetBlock(ngf * m, norm_layer=norm_layer) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            m = 2 ** (n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1),
                      norm_layer(ngf * m // 2), act]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class LocalEnhancer(nn.Module):
    """Global generator run at 1/2**n_local_enhancers resolution, refined by local enhancer branches.

    ``self.model`` is the global generator without its last three layers (pad, conv, tanh), so a
    trained :class:`GlobalGenerator` with ``ngf * 2**n_local_enhancers`` filters loads into it with
    :meth:`load_global`.
    """

    def __init__(self, input_nc=3, output_nc=3, ngf=32, n_downsample_global=3, n_blocks_global=9,
                 n_local_enhancers=1, n_blocks_local=3, norm="instance"):
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        norm_layer = get_norm_layer(norm)
        ngf_global = ngf * 2 ** n_local_enhancers
        g = GlobalGenerator(input_nc, output_nc, ngf_global, n_downsample_global, n_blocks_global, norm).model
        self.model = nn.Sequential(*[g[i] for i in range(len(g) - 3)])
        for n in range(1, n_local_enhancers + 1):
            ngf_g = ngf * 2 ** (n_local_enhancers - n)
            down = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf_g, 7), norm_layer(ngf_g), nn.ReLU(True),
                    nn.Conv2d(ngf_g, ngf_g * 2, 3, stride=2, padding=1), norm_layer(ngf_g * 2), nn.ReLU(True)]
            up = [ResnetBlock(ngf_g * 2, norm_layer=norm_layer) for _ in range(n_blocks_local)]
            up += [nn.ConvTranspose2d(ngf_g * 2, ngf_g, 3, stride=2, padding=1, output_padding=1),
                   norm_layer(ngf_g), nn.ReLU(True)]
            if n == n_local_enhancers:
                up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
            setattr(self, f"model{n}_1", nn.Sequential(*down))
            setattr(self, f"model{n}_2", nn.Sequential(*up))

    def global_parameters(self):
        return self.model.parameters()

    def load_global(self, state_dict: dict) -> None:
        """Loads a GlobalGenerator state_dict (minus its output layers) into the global branch."""
        n = len(self.model)
        sd = {k[len("model."):]: v for k, v in state_dict.items()
              if k.startswith("model.") and int(k.split(".")[1]) < n}
        self.model.load_state_dict(sd)

    def forward(self, x):
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(F.avg_pool2d(pyramid[-1], 3, stride=2, padding=1, count_include_pad=False))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            down = getattr(self, f"model{n}_1")
            up = getattr(self, f"model{n}_2")
            out = up(down(pyramid[self.n_local_enhancers - n]) + out)
        return out
