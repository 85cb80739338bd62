"""What the CUDA caching allocator holds besides a small net's own tensors (run on a GPU)."""

import torch

dev = torch.device("cuda")
torch.cuda.init()
x = torch.randn(3000, 2, device=dev)
net = torch.nn.Sequential(torch.nn.Linear(2, 100), torch.nn.ReLU(), torch.nn.Linear(100, 3)).to(dev)
tensors = x.numel() * 4 + sum(p.numel() * 4 for p in net.parameters())
before = torch.cuda.memory_allocated()
loss = net(x).logsumexp(1).mean()
loss.backward()
del loss
torch.cuda.synchronize()
after = torch.cuda.memory_allocated()
grads = sum(p.grad.numel() * 4 for p in net.parameters())
print(f"tensors (data + params): {tensors / 1e6:.3f} MB; allocated before the first matmul: "
      f"{before / 1e6:.3f} MB")
print(f"allocated after one forward/backward, output freed: {after / 1e6:.3f} MB "
      f"(grads {grads / 1e6:.3f} MB); left over: {(after - before - grads) / 1e6:.3f} MB")
print(f"peak: {torch.cuda.max_memory_allocated() / 1e6:.3f} MB")
